//! `filegate webhook …`: the webhook behaviors and their recent deliveries, and a test send.

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use super::print_json;
use crate::gateway::Core;

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// List webhook behaviors (folder, URLs, triggers) and the outbox's state.
    List {
        /// Also print the newest deliveries (this many).
        #[arg(long, default_value_t = 0)]
        deliveries: i64,
        /// Print JSON instead of text lines.
        #[arg(long)]
        json: bool,
    },
    /// Send one signed test delivery to every URL of behavior ID now (through the SSRF
    /// guard and `webhooks.allow_private`); exits non-zero unless one answered 2xx.
    Test {
        /// The behavior's id.
        id: i64,
    },
}

pub async fn run(core: &Core, cmd: WebhookCommand) -> anyhow::Result<()> {
    match cmd {
        WebhookCommand::List { deliveries, json } => list(core, deliveries, json).await,
        WebhookCommand::Test { id } => test(core, id).await,
    }
}

async fn list(core: &Core, deliveries: i64, as_json: bool) -> anyhow::Result<()> {
    let rules = core.store.behaviors().await?;
    let pending = core.store.pending_deliveries().await?;
    let recent = if deliveries > 0 {
        core.store
            .deliveries(None, None, None, deliveries.clamp(1, 10_000))
            .await?
    } else {
        Vec::new()
    };
    if as_json {
        let rules: Vec<_> = rules
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "path": r.path, "behavior": r.behavior, "name": r.name,
                    "value": r.rule().map(|x| x.value.to_json()),
                })
            })
            .collect();
        let recent: Vec<_> = recent
            .iter()
            .map(|d| {
                json!({
                    "id": d.id, "behavior_id": d.behavior_id, "event_key": d.event_key,
                    "action": d.action, "path": d.path, "status": d.state,
                    "attempts": d.attempts, "last_http_status": d.last_status,
                    "last_error": d.last_error,
                })
            })
            .collect();
        return print_json(&json!({"behaviors": rules, "pending": pending, "deliveries": recent}));
    }
    for r in &rules {
        match r.rule() {
            Some(rule) => println!(
                "{:>5} {:<30} {} triggers={} {}",
                r.id,
                r.path,
                rule.value.urls.join(","),
                if rule.value.triggers.is_empty() {
                    "all".to_owned()
                } else {
                    rule.value.triggers.join(",")
                },
                r.name.as_deref().unwrap_or("")
            ),
            None => println!("{:>5} {:<30} ({} behavior)", r.id, r.path, r.behavior),
        }
    }
    println!("{} behavior(s); {pending} deliveries pending", rules.len());
    for d in &recent {
        println!(
            "  #{} rule {} {} {} {} attempts={} {}",
            d.id,
            d.behavior_id,
            d.state,
            d.action,
            d.path.as_deref().unwrap_or("-"),
            d.attempts,
            d.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

async fn test(core: &Core, id: i64) -> anyhow::Result<()> {
    let row = core
        .store
        .behavior(id)
        .await?
        .with_context(|| format!("no behavior {id}"))?;
    let rule = row
        .rule()
        .with_context(|| format!("behavior {id} is not a readable webhook"))?;
    let config = &core.config.webhooks;
    let ca = (!config.ca_file.as_os_str().is_empty()).then_some(config.ca_file.as_path());
    let sender = crate::webhooks::send::Sender::new(
        crate::webhooks::guard::Allow(config.allow_private.clone()),
        config.timeout(),
        ca,
    )
    .map_err(anyhow::Error::msg)?;
    let payload = json!({
        "action": "test", "type": "file", "path": "filegate-webhook-test.txt",
        "interface": "cli", "event_key": "test",
    });
    let mut ok = false;
    for url in &rule.value.urls {
        let out = crate::webhooks::outgoing(
            &rule.value,
            &rule.secret,
            url,
            &payload,
            "test",
            chrono::Utc::now().timestamp(),
        );
        match sender.send(&out).await {
            Ok(a) => {
                println!("{url}: HTTP {}", a.status);
                ok |= (200..300).contains(&a.status);
            }
            Err(e) => println!("{url}: {e}"),
        }
    }
    if !ok {
        bail!("no URL of behavior {id} answered 2xx");
    }
    Ok(())
}
