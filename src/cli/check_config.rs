//! `carbyne check-config`: load the configuration as the server would, print it, and say which
//! schema and aggregation a metric would be created with.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use carbyne::config::{Config, Environment, DEFAULT_INSTANCE};
use clap::Args;

/// Where the configuration comes from (shared by `serve` and `check-config`).
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// carbon.conf to read (default: $GRAPHITE_CONF_DIR/carbon.conf or
    /// $GRAPHITE_ROOT/conf/carbon.conf when set, else the embedded defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The carbon-cache instance whose `[cache:NAME]` section overrides `[cache]`.
    #[arg(long, default_value = DEFAULT_INSTANCE)]
    pub instance: String,
    /// Data directory when running on embedded defaults.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
}

impl Default for ConfigArgs {
    fn default() -> Self {
        ConfigArgs { config: None, instance: DEFAULT_INSTANCE.to_string(), data_dir: PathBuf::from("data") }
    }
}

impl ConfigArgs {
    /// Loads the configuration these arguments name.
    pub fn load(&self) -> Result<Config> {
        load(self.config.as_ref(), &self.instance, self.data_dir.clone())
    }
}

/// Arguments of `check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    #[command(flatten)]
    source: ConfigArgs,
    /// Show the schema and aggregation this metric would be created with (repeatable).
    #[arg(long = "metric")]
    metrics: Vec<String>,
}

/// Loads the configuration the way `serve` will: an explicit file, else one named by the
/// GRAPHITE_* environment, else the embedded defaults.
pub fn load(config: Option<&PathBuf>, instance: &str, data_dir: PathBuf) -> Result<Config> {
    let env = Environment::from_process();
    let path = config.cloned().or_else(|| env.carbon_conf().filter(|p| p.exists()));
    Ok(match path {
        Some(p) => Config::load_with_env(&p, instance, &env)?,
        None => Config::embedded(data_dir),
    })
}

/// Runs `check-config`.
pub fn run(args: &CheckConfigArgs, out: &mut dyn Write) -> Result<()> {
    let config = args.source.load()?;
    write!(out, "{}", config.describe())?;
    for metric in &args.metrics {
        let plan = config.create_plan(metric);
        let archives: Vec<String> = plan.schema.archives.iter().map(ToString::to_string).collect();
        writeln!(out, "\nmetric {metric}:")?;
        writeln!(
            out,
            "  schema [{}] pattern {} (line {}): retentions {} = {}",
            plan.schema.name,
            plan.schema.pattern,
            plan.schema.line,
            plan.schema.retentions,
            archives.join(",")
        )?;
        writeln!(
            out,
            "  aggregation [{}] pattern {} (line {}): {} xFilesFactor {}",
            plan.aggregation.name,
            plan.aggregation.pattern,
            plan.aggregation.line,
            plan.aggregation.method,
            plan.aggregation.x_files_factor
        )?;
    }
    Ok(())
}
