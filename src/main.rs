//! The `filegate` binary: parse the command line, load and validate the config, set up
//! logging, run. Everything else lives in the library.

use clap::Parser;
use filegate::cli::{Cli, run};
use filegate::config::Config;
use tracing_subscriber::EnvFilter;

/// jemalloc instead of glibc's malloc: transfers allocate and free buffers of megabytes all
/// the time, and glibc serves those from per-thread arenas it seldom gives back (its mmap
/// threshold rises to the largest freed block), so 8 parallel S3 uploads peaked at 428 MiB
/// resident where jemalloc, which reuses freed extents across threads, stays far lower
/// (bench/s3.sh `ONLY=rss`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("filegate: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&config, cli.is_serve());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("filegate: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("filegate: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config, serving: bool) {
    // libunftp logs at info inside spans that carry the whole session (kilobytes per line), so
    // a client looping PASV would fill the disk: only its warnings by default.
    let default = if serving {
        "info,libunftp=warn"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("FILEGATE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    // The S3 signer logs its credential provider, secret included, at debug: whatever the
    // filter asks, it says no more than warnings (a later directive for a target replaces
    // an earlier one).
    let filter = ["reqsign_core=warn", "reqsign_aws_v4=warn", "reqsign=warn"]
        .into_iter()
        .fold(filter, |filter, directive| {
            filter.add_directive(directive.parse().expect("a valid directive"))
        });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if config.server.log_format == filegate::config::LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}
