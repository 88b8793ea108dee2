//! `filegate key …`

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;

use super::users::explain;
use super::{print_json, time_or_dash};
use crate::accounts::{KeyOwner, KeySpec};
use crate::gateway::Core;
use crate::identity::{PermissionSet, Principal};
use crate::model::{KeyRecord, format_time, parse_time};
use crate::store::KeyOwnerFilter;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key and print its secret (shown only this once).
    Create(CreateArgs),
    /// List API keys (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete an API key: logins with it are refused from now on.
    Revoke {
        /// The key's id.
        id: i64,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("owner").required(true).args(["user", "site_wide"])))]
pub struct CreateArgs {
    /// The user who owns the key (it never exceeds that user's rights).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// A site-wide key: acts as a site admin with no user (use sparingly).
    #[arg(long)]
    site_wide: bool,
    /// The key's name, unique, not all digits; sign in as @api-<name> or @api-<id>.
    #[arg(long)]
    name: String,
    /// Confine the key to this folder, Files.com form: shared/docs (no leading slash).
    #[arg(long)]
    path: Option<String>,
    /// full | desktop_app | files_only | readonly | writeonly
    #[arg(long, default_value = "full")]
    permission_set: String,
    /// Expiry, RFC 3339 (2027-01-31T00:00:00Z) or a date (2027-01-31).
    #[arg(long, value_name = "TIME")]
    expires_at: Option<String>,
    /// A description for humans.
    #[arg(long)]
    description: Option<String>,
    /// Print JSON (id, name, key, user_id, …) instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(core: &Core, cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Create(args) => create(core, args).await,
        KeyCommand::List { json } => list(core, json).await,
        KeyCommand::Revoke { id } => {
            core.accounts
                .revoke_key(&Principal::cli(), id)
                .await
                .map_err(explain)?;
            println!("key {id} revoked");
            Ok(())
        }
    }
}

async fn create(core: &Core, args: CreateArgs) -> anyhow::Result<()> {
    let permission_set: PermissionSet = match args.permission_set.parse() {
        Ok(set) => set,
        Err(_) => bail!(
            "--permission-set must be one of full, desktop_app, files_only, readonly, writeonly"
        ),
    };
    let expires_at = match &args.expires_at {
        None => None,
        Some(text) => match parse_time(text) {
            Some(t) => Some(t),
            None => bail!("--expires-at {text:?} is not an RFC 3339 time or a date"),
        },
    };
    let (owner, created_by) = match &args.user {
        Some(name) => {
            let user = core.accounts.user_by_name(name).await.map_err(explain)?;
            (KeyOwner::User(user.id), None)
        }
        None => (KeyOwner::SiteWide, None),
    };
    let spec = KeySpec {
        owner,
        name: args.name,
        description: args.description,
        path: args.path,
        permission_set,
        expires_at,
        platform: None,
        created_by,
    };
    let created = core
        .accounts
        .create_key(&Principal::cli(), spec)
        .await
        .map_err(explain)?;
    let k = &created.record;
    if args.json {
        let mut value = key_json(k);
        value["key"] = json!(created.secret);
        return print_json(&value);
    }
    println!("created API key {} (id {})", k.name, k.id);
    println!("secret: {}", created.secret);
    println!(
        "This secret is shown only once. Sign in with login @api-{} (or @api-{}) and the secret as password.",
        k.id, k.name
    );
    Ok(())
}

fn key_json(k: &KeyRecord) -> serde_json::Value {
    json!({
        "id": k.id, "name": k.name, "description": k.description, "user_id": k.user_id,
        "path": k.path, "permission_set": k.permission_set, "platform": k.platform,
        "created_at": format_time(k.created_at), "expires_at": k.expires_at.map(format_time),
        "last_use_at": k.last_use_at.map(format_time),
    })
}

async fn list(core: &Core, json: bool) -> anyhow::Result<()> {
    let keys = core.store.all_keys(KeyOwnerFilter::All).await?;
    if json {
        return print_json(&serde_json::Value::Array(
            keys.iter().map(key_json).collect(),
        ));
    }
    println!(
        "{:>5}  {:<24} {:<14} {:<12} {:<20} {:<20} last use",
        "id", "name", "owner", "permissions", "path", "expires"
    );
    for k in &keys {
        let owner = match k.user_id {
            None => "(site-wide)".to_owned(),
            Some(id) => core
                .store
                .user_by_id(id)
                .await?
                .map(|u| u.username)
                .unwrap_or_else(|| format!("user {id}")),
        };
        println!(
            "{:>5}  {:<24} {:<14} {:<12} {:<20} {:<20} {}",
            k.id,
            k.name,
            owner,
            k.permission_set,
            k.path.as_deref().unwrap_or("-"),
            time_or_dash(k.expires_at),
            time_or_dash(k.last_use_at)
        );
    }
    Ok(())
}
