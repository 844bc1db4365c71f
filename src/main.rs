//! The `carbyne` binary: parses the command line and runs the chosen subcommand. Thin on
//! purpose; everything of substance lives in the library.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc, built without transparent huge pages (feature `no_thp`): with THP it advises its
/// arenas MADV_HUGEPAGE, and every 2 MiB region a thread touches becomes resident whole (43 MB
/// of an idle server's 47 MB anonymous memory; 4.7 MB without).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = match args.command {
        None => cli::serve::run(&cli::serve::ServeArgs::default_args(), &mut out),
        Some(cli::Command::Serve(args)) => cli::serve::run(&args, &mut out),
        Some(cli::Command::Whisper(cmd)) => cli::whisper::run(cmd, &mut out),
        Some(cli::Command::CheckConfig(args)) => cli::check_config::run(&args, &mut out),
        Some(cli::Command::Doctor(args)) => cli::doctor::run(&args, &mut out),
    };
    let result = result.and_then(|()| out.flush().map_err(Into::into));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) ends the output, as it does for whisper's tools.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            drop(out);
            eprintln!("[ERROR] {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
