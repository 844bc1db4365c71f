//! `carbyne whisper ...`: the whisper command-line tools (whisper-info, -fetch, -dump, -create,
//! -update, -resize, -set-aggregation-method, -set-xfilesfactor) on the Carbyne engine, with
//! the same arguments and the same output, so operators' scripts keep working.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use carbyne::whisper::{
    self, create, decode_point, AggregationMethod, Allocation, ArchiveSpec, CreateOptions, Header, ResizeOptions,
    Whisper, WriteOptions, POINT_SIZE,
};
use clap::{Args, Subcommand, ValueEnum};

use carbyne::pyfmt::{c_f, c_g, ctime_utc, py_list, py_repr};

/// The whisper tools.
#[derive(Debug, Subcommand)]
pub enum WhisperCommand {
    /// Print a file's header (whisper-info).
    Info {
        /// The whisper file.
        path: PathBuf,
        /// Print only this field (aggregationMethod, maxRetention, xFilesFactor, fileSize, archives).
        field: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print the values of a time range (whisper-fetch).
    Fetch(FetchArgs),
    /// Print the header and every slot of every archive (whisper-dump).
    Dump {
        /// The whisper file.
        path: PathBuf,
        /// Human-readable timestamps (UTC) instead of epoch seconds.
        #[arg(long)]
        pretty: bool,
    },
    /// Create a file (whisper-create).
    Create(CreateArgs),
    /// Write points TIMESTAMP:VALUE, `N:` meaning now (whisper-update).
    Update {
        /// The whisper file.
        path: PathBuf,
        /// Points as TIMESTAMP:VALUE.
        #[arg(required = true)]
        points: Vec<String>,
        /// The current time in epoch seconds (default: the clock).
        #[arg(long)]
        now: Option<i64>,
    },
    /// Change a file's retentions keeping its data (whisper-resize).
    Resize(ResizeArgs),
    /// Change the aggregation method, and optionally xFilesFactor (whisper-set-aggregation-method).
    SetAggregation {
        /// The whisper file.
        path: PathBuf,
        /// average, sum, last, max, min, avg_zero, absmax or absmin.
        method: String,
        /// New xFilesFactor in [0, 1].
        xff: Option<f64>,
    },
    /// Change the xFilesFactor (whisper-set-xfilesfactor).
    SetXff {
        /// The whisper file.
        path: PathBuf,
        /// New xFilesFactor in [0, 1].
        xff: f64,
    },
}

/// Arguments of `whisper fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The whisper file.
    path: PathBuf,
    /// Start of the interval in epoch seconds (default: 24 hours ago).
    #[arg(long)]
    from: Option<i64>,
    /// End of the interval in epoch seconds (default: now).
    #[arg(long)]
    until: Option<i64>,
    /// The current time in epoch seconds (default: the clock).
    #[arg(long)]
    now: Option<i64>,
    /// JSON output.
    #[arg(long)]
    json: bool,
    /// Human-readable timestamps (UTC) instead of epoch seconds.
    #[arg(long)]
    pretty: bool,
    /// Drop null values, zero values, or both.
    #[arg(long, value_enum)]
    drop: Option<Drop>,
}

/// Which values `fetch --drop` leaves out.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Drop {
    /// Missing values.
    Nulls,
    /// Values equal to zero.
    Zeroes,
    /// Both.
    Empty,
}

/// Arguments of `whisper create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The file to create (not needed with --estimate).
    path: Option<PathBuf>,
    /// Retentions such as 60:1440 or 10s:6h (one or more; a comma list is accepted too).
    retentions: Vec<String>,
    /// Fraction of known points a propagation needs.
    #[arg(long = "xFilesFactor", default_value_t = 0.5)]
    x_files_factor: f64,
    /// Aggregation method.
    #[arg(long = "aggregationMethod", default_value = "average")]
    aggregation_method: String,
    /// Replace an existing file.
    #[arg(long)]
    overwrite: bool,
    /// Create a sparse file.
    #[arg(long)]
    sparse: bool,
    /// Reserve the space with fallocate.
    #[arg(long)]
    fallocate: bool,
    /// Only print the size such a file and many of them would take.
    #[arg(long)]
    estimate: bool,
}

/// Arguments of `whisper resize`.
#[derive(Debug, Args)]
pub struct ResizeArgs {
    /// The whisper file.
    path: PathBuf,
    /// The new retentions.
    #[arg(required = true)]
    retentions: Vec<String>,
    /// New xFilesFactor.
    #[arg(long = "xFilesFactor")]
    x_files_factor: Option<f64>,
    /// New aggregation method.
    #[arg(long = "aggregationMethod")]
    aggregation_method: Option<String>,
    /// Write the new file here and leave the old one in place.
    #[arg(long)]
    newfile: Option<PathBuf>,
    /// Delete the .bak file afterwards.
    #[arg(long)]
    nobackup: bool,
    /// Aggregate old points into the new archives' intervals instead of keeping the last.
    #[arg(long)]
    aggregate: bool,
    /// The current time in epoch seconds (default: the clock).
    #[arg(long)]
    now: Option<i64>,
}

fn clock_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn parse_retentions(defs: &[String]) -> Result<Vec<ArchiveSpec>> {
    let defs: Vec<&str> = defs.iter().flat_map(|d| d.split(',')).collect();
    defs.iter().map(|d| whisper::parse_retention_def(d).map_err(Into::into)).collect()
}

/// Runs one whisper tool, printing to `out`.
pub fn run(cmd: WhisperCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        WhisperCommand::Info { path, field, json } => info(&path, field.as_deref(), json, out),
        WhisperCommand::Fetch(args) => fetch(&args, out),
        WhisperCommand::Dump { path, pretty } => dump(&path, pretty, out),
        WhisperCommand::Create(args) => create_file(&args, out),
        WhisperCommand::Update { path, points, now } => update(&path, &points, now.unwrap_or_else(clock_now)),
        WhisperCommand::Resize(args) => resize(&args, out),
        WhisperCommand::SetAggregation { path, method, xff } => {
            let method: AggregationMethod = method.parse()?;
            let (old, _) = Whisper::open(&path, WriteOptions::default())?.set_aggregation(Some(method), xff)?;
            writeln!(out, "Updated aggregation method: {} ({old} -> {method})", path.display())?;
            Ok(())
        }
        WhisperCommand::SetXff { path, xff } => {
            let (_, old) = Whisper::open(&path, WriteOptions::default())?.set_aggregation(None, Some(xff))?;
            writeln!(
                out,
                "Updated xFilesFactor: {} ({} -> {})",
                path.display(),
                py_repr(f64::from(old)),
                py_repr(xff)
            )?;
            Ok(())
        }
    }
}

fn archive_fields(h: &Header) -> Vec<[(&'static str, u64); 5]> {
    h.archives
        .iter()
        .map(|a| {
            [
                ("offset", u64::from(a.offset)),
                ("secondsPerPoint", u64::from(a.seconds_per_point)),
                ("points", u64::from(a.points)),
                ("retention", a.retention() as u64),
                ("size", a.size_bytes()),
            ]
        })
        .collect()
}

fn info(path: &Path, field: Option<&str>, json: bool, out: &mut dyn Write) -> Result<()> {
    let h = whisper::info(path)?;
    let file_size = std::fs::metadata(path).with_context(|| path.display().to_string())?.len();
    let scalars: [(&str, String); 4] = [
        ("aggregationMethod", h.aggregation.name().to_string()),
        ("maxRetention", h.max_retention.to_string()),
        ("xFilesFactor", py_repr(h.xff())),
        ("fileSize", file_size.to_string()),
    ];
    let archives = archive_fields(&h);
    if let Some(field) = field {
        return print_field(field, &scalars, &archives, out);
    }
    if json {
        let archives_json: Vec<serde_json::Value> = archives
            .iter()
            .map(|a| serde_json::Value::Object(a.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect()))
            .collect();
        let mut doc = serde_json::Map::new();
        doc.insert("aggregationMethod".into(), h.aggregation.name().into());
        doc.insert("maxRetention".into(), h.max_retention.into());
        doc.insert("xFilesFactor".into(), h.xff().into());
        doc.insert("archives".into(), archives_json.into());
        doc.insert("fileSize".into(), file_size.into());
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
    for (k, v) in &scalars {
        writeln!(out, "{k}: {v}")?;
    }
    writeln!(out)?;
    for (i, a) in archives.iter().enumerate() {
        writeln!(out, "Archive {i}")?;
        for (k, v) in a {
            writeln!(out, "{k}: {v}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn print_field(
    field: &str,
    scalars: &[(&str, String)],
    archives: &[[(&'static str, u64); 5]],
    out: &mut dyn Write,
) -> Result<()> {
    if let Some((_, v)) = scalars.iter().find(|(k, _)| *k == field) {
        writeln!(out, "{v}")?;
        return Ok(());
    }
    if field == "archives" {
        let dicts: Vec<String> = archives
            .iter()
            .map(|a| format!("{{{}}}", a.iter().map(|(k, v)| format!("'{k}': {v}")).collect::<Vec<_>>().join(", ")))
            .collect();
        writeln!(out, "[{}]", dicts.join(", "))?;
        return Ok(());
    }
    bail!("Unknown field \"{field}\". Valid fields are aggregationMethod,maxRetention,xFilesFactor,archives,fileSize")
}

fn fetch(args: &FetchArgs, out: &mut dyn Write) -> Result<()> {
    let now = args.now.unwrap_or_else(clock_now);
    let from = args.from.unwrap_or(now - 86400);
    let until = args.until.unwrap_or(now);
    let mut file = Whisper::open_read_only(&args.path)?;
    let Some(result) = file.fetch(from, Some(until), now, None)? else {
        bail!("No data in selected timerange");
    };
    let keep = |v: &Option<f64>| match args.drop {
        None => true,
        Some(Drop::Nulls) => v.is_some(),
        Some(Drop::Zeroes) => *v != Some(0.0),
        Some(Drop::Empty) => v.is_some() && *v != Some(0.0),
    };
    let values: Vec<Option<f64>> = result.values.iter().copied().filter(keep).collect();
    if args.json {
        let list = py_list(&values).replace("None", "null");
        writeln!(
            out,
            "{{\n    \"start\" : {},\n    \"end\" : {},\n    \"step\" : {},\n    \"values\" : {list}\n  }}",
            result.from, result.until, result.step
        )?;
        return Ok(());
    }
    // As whisper-fetch: after --drop the timestamps simply advance by one step per printed value.
    for (i, v) in values.iter().enumerate() {
        let t = result.from + i as i64 * result.step;
        let time = if args.pretty { ctime_utc(t) } else { t.to_string() };
        let value = v.map_or_else(|| "None".to_string(), c_f);
        writeln!(out, "{time}\t{value}")?;
    }
    Ok(())
}

fn dump(path: &Path, pretty: bool, out: &mut dyn Write) -> Result<()> {
    if !path.exists() {
        bail!("File \"{}\" does not exist!", path.display());
    }
    let h = whisper::info(path)?;
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    writeln!(out, "Meta data:")?;
    writeln!(out, "  aggregation method: {}", h.aggregation)?;
    writeln!(out, "  max retention: {}", h.max_retention)?;
    writeln!(out, "  xFilesFactor: {}\n", c_g(h.xff(), 6))?;
    for (i, a) in archive_fields(&h).iter().enumerate() {
        writeln!(out, "Archive {i} info:")?;
        let labels = ["offset", "seconds per point", "points", "retention", "size"];
        for (label, (_, v)) in labels.iter().zip(a) {
            writeln!(out, "  {label}: {v}")?;
        }
        writeln!(out)?;
    }
    for (i, a) in h.archives.iter().enumerate() {
        writeln!(out, "Archive {i} data:")?;
        let slots = bytes[a.offset as usize..a.end() as usize].chunks_exact(POINT_SIZE);
        for (n, slot) in slots.enumerate() {
            let (ts, value) = decode_point(slot);
            let time = if pretty { ctime_utc(i64::from(ts)) } else { ts.to_string() };
            writeln!(out, "{n}: {time}, {:>10}", c_g(value, 35))?;
        }
    }
    Ok(())
}

fn create_file(args: &CreateArgs, out: &mut dyn Write) -> Result<()> {
    let mut defs = args.retentions.clone();
    if args.estimate {
        if let Some(p) = &args.path {
            defs.insert(0, p.display().to_string());
        }
        return estimate(&parse_retentions(&defs)?, out);
    }
    let Some(path) = &args.path else { bail!("usage: carbyne whisper create PATH RETENTION...") };
    if defs.is_empty() {
        bail!("usage: carbyne whisper create PATH RETENTION...");
    }
    let archives = parse_retentions(&defs)?;
    if args.overwrite && path.exists() {
        writeln!(out, "Overwriting existing file: {}", path.display())?;
        std::fs::remove_file(path).with_context(|| path.display().to_string())?;
    }
    let allocation = match (args.fallocate, args.sparse) {
        (true, _) => Allocation::Fallocate,
        (false, true) => Allocation::Sparse,
        (false, false) => Allocation::Zeroed,
    };
    let opts = CreateOptions {
        aggregation: args.aggregation_method.parse()?,
        x_files_factor: args.x_files_factor,
        allocation,
        write: WriteOptions::default(),
    };
    create(path, &archives, &opts)?;
    let size = std::fs::metadata(path).with_context(|| path.display().to_string())?.len();
    writeln!(out, "Created: {} ({size} bytes)", path.display())?;
    Ok(())
}

fn byte_format(mut n: f64) -> String {
    for unit in ["bytes", "KB", "MB"] {
        if n < 1024.0 {
            return format!("{n:.3}{unit}");
        }
        n /= 1024.0;
    }
    format!("{n:.3}GB")
}

fn estimate(archives: &[ArchiveSpec], out: &mut dyn Write) -> Result<()> {
    for (i, a) in archives.iter().enumerate() {
        writeln!(out, "Archive {i}: {} points of {}s precision", a.points, a.seconds_per_point)?;
    }
    let total: u64 = archives.iter().map(|a| u64::from(a.points)).sum();
    let size = whisper::file_size(archives.len() as u64, total);
    let disk = size.div_ceil(4096) * 4096;
    writeln!(out, "\nEstimated Whisper DB Size: {} ({disk} bytes on disk with 4k blocks)\n", byte_format(size as f64))?;
    for k in [1u64, 5, 10, 50, 100, 500] {
        writeln!(out, "Estimated storage requirement for {k}k metrics: {}", byte_format((k * 1000 * disk) as f64))?;
    }
    Ok(())
}

fn update(path: &Path, points: &[String], now: i64) -> Result<()> {
    let parsed = points
        .iter()
        .map(|p| {
            let (ts, value) = p.split_once(':').with_context(|| format!("point '{p}' is not TIMESTAMP:VALUE"))?;
            let ts =
                if ts == "N" { now } else { parse_timestamp(ts).with_context(|| format!("bad timestamp in '{p}'"))? };
            let value: f64 = value.trim().parse().with_context(|| format!("bad value in '{p}'"))?;
            Ok((ts, value))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut file = Whisper::open(path, WriteOptions::default())?;
    match parsed.as_slice() {
        [(ts, value)] => file.update(*value, Some(*ts), now)?,
        many => {
            file.update_many(many, now)?;
        }
    }
    Ok(())
}

/// A timestamp as whisper's `int(float(x))`-style parsing accepts it: integer or float, truncated.
fn parse_timestamp(s: &str) -> Result<i64> {
    let s = s.trim();
    if let Ok(t) = s.parse::<i64>() {
        return Ok(t);
    }
    let f: f64 = s.parse()?;
    if !f.is_finite() || f.abs() > 1e15 {
        bail!("timestamp {s} out of range");
    }
    Ok(f.trunc() as i64)
}

fn resize(args: &ResizeArgs, out: &mut dyn Write) -> Result<()> {
    if !args.path.exists() {
        bail!("File '{}' does not exist!", args.path.display());
    }
    let archives = parse_retentions(&args.retentions)?;
    let opts = ResizeOptions {
        x_files_factor: args.x_files_factor,
        aggregation: args.aggregation_method.as_deref().map(str::parse).transpose()?,
        aggregate: args.aggregate,
        new_file: args.newfile.clone(),
        no_backup: args.nobackup,
        write: WriteOptions::default(),
    };
    let now = args.now.unwrap_or_else(clock_now);
    let written = whisper::resize(&args.path, &archives, &opts, now)?;
    let size = std::fs::metadata(&written).with_context(|| written.display().to_string())?.len();
    let mode = if args.aggregate { "with" } else { "without" };
    writeln!(out, "Resized {} ({size} bytes), data migrated {mode} aggregation", written.display())?;
    if args.newfile.is_none() && !args.nobackup {
        writeln!(out, "Old database kept as: {}.bak", args.path.display())?;
    }
    Ok(())
}
