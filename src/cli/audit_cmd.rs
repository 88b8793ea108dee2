//! `filegate audit …`

use clap::Subcommand;
use serde_json::json;

use super::print_json;
use crate::gateway::Core;
use crate::model::format_time;
use crate::store::AuditQuery;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the newest audit records, oldest first.
    Tail {
        /// How many records.
        #[arg(short = 'n', long = "lines", default_value_t = 20)]
        n: i64,
        /// Print JSON instead of text lines.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(core: &Core, cmd: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Tail { n, json } = cmd;
    let limit = n.clamp(1, 100_000);
    let mut rows = core
        .store
        .read_audit(&AuditQuery {
            limit,
            ..Default::default()
        })
        .await?;
    rows.reverse();
    if json {
        let values = rows
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "when": format_time(r.at_ms / 1000), "at_ms": r.at_ms, "node": r.node,
                    "session_id": r.session_id, "user_id": r.user_id, "username": r.username,
                    "key_id": r.key_id, "interface": r.protocol, "action": r.action, "path": r.path,
                    "destination": r.destination, "bytes": r.bytes, "result": r.result,
                    "reason": r.reason, "ip": r.remote_addr,
                })
            })
            .collect();
        return print_json(&serde_json::Value::Array(values));
    }
    for r in rows {
        let who = match (&r.username, r.key_id) {
            (Some(u), Some(k)) => format!("{u} (key {k})"),
            (Some(u), None) => u.clone(),
            (None, Some(k)) => format!("site-wide key {k}"),
            (None, None) => "-".into(),
        };
        let mut line = format!(
            "{} {} {:<7} {:<18} {:<7} {}",
            format_time(r.at_ms / 1000),
            r.node,
            r.protocol,
            r.action,
            r.result,
            who
        );
        if let Some(p) = &r.path {
            line.push_str(&format!(" {p}"));
        }
        if let Some(d) = &r.destination {
            line.push_str(&format!(" -> {d}"));
        }
        if let Some(b) = r.bytes {
            line.push_str(&format!(" {b}B"));
        }
        if let Some(reason) = &r.reason {
            line.push_str(&format!(" ({reason})"));
        }
        if let Some(ip) = &r.remote_addr {
            line.push_str(&format!(" from {ip}"));
        }
        println!("{line}");
    }
    Ok(())
}
