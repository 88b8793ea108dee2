//! The `filegate` command line: `serve`, `migrate`, and management commands that act on the
//! store directly (as a site admin, audited as protocol `cli`).
//!
//! Glue only: parse arguments, call `accounts`/`store`/`gateway`, print. Errors here are
//! `anyhow` with a one-line message for the terminal.

mod audit_cmd;
mod keys;
mod users;
mod webhook_cmd;

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::gateway::{Core, Gateway};

/// filegate: SFTP, FTP/FTPS and WebDAV with users, folder grants and API keys.
#[derive(Debug, Parser)]
#[command(name = "filegate", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: config/filegate.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: every enabled protocol front-end, until Ctrl-C or SIGTERM.
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Webhook behaviors: list them and their deliveries, send a test.
    #[command(subcommand)]
    Webhook(webhook_cmd::WebhookCommand),
}

impl Cli {
    /// Whether this command runs the server (and so wants info-level logs).
    pub fn is_serve(&self) -> bool {
        matches!(self.command, Command::Serve)
    }
}

/// Runs a parsed command line with a validated config.
pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let core = Core::open_admin(config).await?;
            println!("database schema is up to date ({})", core.store.backend());
            core.close().await;
            Ok(())
        }
        Command::User(cmd) => with_core(config, |core| Box::pin(users::run(core, cmd))).await,
        Command::Key(cmd) => with_core(config, |core| Box::pin(keys::run(core, cmd))).await,
        Command::Audit(cmd) => with_core(config, |core| Box::pin(audit_cmd::run(core, cmd))).await,
        Command::Webhook(cmd) => {
            with_core(config, |core| Box::pin(webhook_cmd::run(core, cmd))).await
        }
    }
}

type BoxedRun<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>>;

/// Opens the core, runs `f`, and always flushes the audit log afterwards.
async fn with_core(
    config: Config,
    f: impl for<'a> FnOnce(&'a Core) -> BoxedRun<'a>,
) -> anyhow::Result<()> {
    // Beside a running server: its uploads in progress are left alone.
    let core = Core::open_admin(config).await?;
    let result = f(&core).await;
    core.close().await;
    result
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let shutdown = ShutdownSignal::install()?;
    let core = Core::open(config).await?;
    let admin = core.bootstrap_admin().await?;
    if let Some((username, password)) = &admin {
        println!("First start: created site admin {username:?} with password {password}");
        println!(
            "This password is shown only once. Change it with: filegate user passwd {username}"
        );
    }
    tracing::info!(
        data_dir = %core.config.server.data_dir.display(),
        database = core.store.backend(),
        node = %core.config.server.node_name,
        "filegate starting"
    );
    let first_admin = admin.as_ref().map(|(name, _)| name.clone());
    let gateway = Gateway::start(core).await?;
    if gateway.listening.is_empty() {
        tracing::warn!("no protocol front-end is running; the store and CLI are ready");
    }
    if let Some(user) = first_admin {
        print_sign_in(&gateway, &user);
    }
    shutdown.received().await;
    tracing::info!("shutting down");
    gateway.stop().await;
    Ok(())
}

/// Tells a first-time user how to reach each running front-end.
fn print_sign_in(gateway: &Gateway, user: &str) {
    println!("Sign in:");
    for (protocol, addr) in &gateway.listening {
        let (host, port) = (addr.ip(), addr.port());
        match *protocol {
            "sftp" => println!("  SFTP  sftp -P {port} {user}@{host}"),
            "ftp" => {
                println!("  FTP   lftp -p {port} -u {user} {host}    (explicit FTPS: AUTH TLS)")
            }
            "webdav" => println!(
                "  WebDAV  curl -u {user} http://{host}:{port}/   (or mount http://{host}:{port}/)"
            ),
            "api" => println!(
                "  API   curl -X POST -H 'Content-Type: application/json' -d '{{\"username\":\"{user}\",\"password\":\"…\"}}' http://{host}:{port}/api/rest/v1/sessions"
            ),
            other => println!("  {other} on {addr}"),
        }
    }
    println!(
        "  API keys: filegate key create --user {user} --name my-key   (then sign in as @api-my-key)"
    );
}

/// SIGINT and SIGTERM, listened for from the start of `serve` (a signal that arrives while
/// the gateway is still starting is not lost, and does not kill the process mid-start).
struct ShutdownSignal {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    fn install() -> anyhow::Result<ShutdownSignal> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignal {
                term: signal(SignalKind::terminate()).context("install a SIGTERM handler")?,
                int: signal(SignalKind::interrupt()).context("install a SIGINT handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignal {})
    }

    async fn received(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reads a password: the first line of stdin with `from_stdin`, else a fresh random one
/// (returned so it can be printed once).
fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((crate::secret::random_hex(12), true));
    }
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)
        .context("reading the password from stdin")?;
    let password = input.lines().next().unwrap_or("").to_owned();
    if password.is_empty() {
        bail!("no password on stdin");
    }
    Ok((password, false))
}

/// Prints `value` as pretty JSON.
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn time_or_dash(t: Option<i64>) -> String {
    t.map(crate::model::format_time)
        .unwrap_or_else(|| "-".into())
}
