//! `filegate user …`

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use super::{print_json, read_password, time_or_dash};
use crate::accounts::{AccountError, UserSpec};
use crate::gateway::Core;
use crate::identity::{GrantLevel, Principal};
use crate::store::UserChanges;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Without --password-stdin a random password is made and printed once.
    Add {
        /// Username: letters, digits and . _ - @ + (not starting with @).
        name: String,
        /// Make the user a site admin (full rights everywhere, admin API).
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password. Without --password-stdin a random one is made and printed once.
    Passwd {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Grant a user a folder: full, readonly, writeonly or list. Grants add up.
    Grant {
        name: String,
        /// Site path of the folder, e.g. /shared/docs (covers everything below it).
        path: String,
        /// full | readonly | writeonly | list
        level: String,
    },
    /// Disable a user: logins (theirs and their keys') are refused from now on.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
    /// Allow an SSH public key (OpenSSH format file) to sign in as the user over SFTP.
    AddKey {
        name: String,
        /// A file holding one OpenSSH public key line (e.g. ~/.ssh/id_ed25519.pub).
        public_key_file: std::path::PathBuf,
    },
    /// Two-factor sign-in (TOTP) of a user.
    #[command(subcommand)]
    Totp(TotpCommand),
}

#[derive(Debug, Subcommand)]
pub enum TotpCommand {
    /// Turn TOTP on for a user now: prints the otpauth:// URI (for their authenticator app)
    /// and ten recovery codes, once. Refused while TOTP is on: disable it first.
    Enroll { name: String },
    /// Turn TOTP off for a user (their recovery codes go too).
    Disable { name: String },
}

pub async fn run(core: &Core, cmd: UserCommand) -> anyhow::Result<()> {
    let cli = Principal::cli();
    let accounts = &core.accounts;
    match cmd {
        UserCommand::Add {
            name,
            admin,
            password_stdin,
        } => {
            let (password, generated) = read_password(password_stdin)?;
            let spec = UserSpec {
                username: name,
                password: Some(password.clone()),
                site_admin: admin,
                ..Default::default()
            };
            let user = accounts.create_user(&cli, spec).await.map_err(explain)?;
            println!(
                "created user {} (id {}){}",
                user.username,
                user.id,
                if admin { ", site admin" } else { "" }
            );
            if generated {
                println!("password: {password}  (shown only once)");
            }
            if !admin {
                println!(
                    "grant folders with: filegate user grant {} /some/folder full",
                    user.username
                );
            }
        }
        UserCommand::List { json } => list(core, json).await?,
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let user = accounts.user_by_name(&name).await.map_err(explain)?;
            let (password, generated) = read_password(password_stdin)?;
            accounts
                .update_user(&cli, user.id, UserChanges::default(), Some(&password))
                .await
                .map_err(explain)?;
            println!("password of {} changed", user.username);
            if generated {
                println!("password: {password}  (shown only once)");
            }
        }
        UserCommand::Grant { name, path, level } => {
            let level: GrantLevel = level
                .parse()
                .map_err(|_| anyhow::anyhow!("level must be full, readonly, writeonly or list"))?;
            let user = accounts.user_by_name(&name).await.map_err(explain)?;
            let grant = accounts
                .grant(&cli, user.id, &path, level)
                .await
                .map_err(explain)?;
            println!(
                "granted {} on {} to {} (grant id {})",
                grant.level, grant.path, user.username, grant.id
            );
        }
        UserCommand::Disable { name } | UserCommand::Enable { name } if name.is_empty() => {
            bail!("name required")
        }
        UserCommand::Totp(cmd) => totp(core, cmd).await?,
        UserCommand::Disable { name } => set_disabled(core, &name, true).await?,
        UserCommand::Enable { name } => set_disabled(core, &name, false).await?,
        UserCommand::AddKey {
            name,
            public_key_file,
        } => {
            let line = std::fs::read_to_string(&public_key_file)
                .with_context(|| format!("reading {}", public_key_file.display()))?;
            let user = accounts.user_by_name(&name).await.map_err(explain)?;
            let title = line
                .split_whitespace()
                .nth(2)
                .unwrap_or("ssh key")
                .to_owned();
            let key = accounts
                .add_public_key(&cli, user.id, &title, line.trim())
                .await
                .map_err(explain)?;
            println!(
                "added SSH key {} for {} (id {})",
                key.title, user.username, key.id
            );
        }
    }
    Ok(())
}

async fn totp(core: &Core, cmd: TotpCommand) -> anyhow::Result<()> {
    let cli = Principal::cli();
    match cmd {
        TotpCommand::Enroll { name } => {
            let user = core.accounts.user_by_name(&name).await.map_err(explain)?;
            let (enrolment, codes) = core
                .accounts
                .totp_enroll_now(&cli, user.id)
                .await
                .map_err(explain)?;
            println!("two-factor sign-in is on for {}", user.username);
            println!("otpauth URI (add it to an authenticator app; shown only once):");
            println!("{}", enrolment.uri);
            println!("secret: {}", enrolment.secret_base32);
            println!("recovery codes (each works once; shown only once):");
            for code in codes {
                println!("  {code}");
            }
        }
        TotpCommand::Disable { name } => {
            let user = core.accounts.user_by_name(&name).await.map_err(explain)?;
            match core.accounts.totp_disable(&cli, user.id).await {
                Ok(()) => println!("two-factor sign-in is off for {}", user.username),
                Err(AccountError::NotFound) => {
                    bail!("{} has no two-factor sign-in", user.username)
                }
                Err(other) => return Err(explain(other)),
            }
        }
    }
    Ok(())
}

async fn set_disabled(core: &Core, name: &str, disabled: bool) -> anyhow::Result<()> {
    let user = core.accounts.user_by_name(name).await.map_err(explain)?;
    let changes = UserChanges {
        disabled: Some(disabled),
        ..Default::default()
    };
    core.accounts
        .update_user(&Principal::cli(), user.id, changes, None)
        .await
        .map_err(explain)?;
    println!(
        "user {} {}",
        user.username,
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}

async fn list(core: &Core, json: bool) -> anyhow::Result<()> {
    let users = core.store.all_users().await?;
    let from_ldap = core.store.ldap_user_ids().await?;
    let source = |id: i64| {
        if from_ldap.binary_search(&id).is_ok() {
            "ldap"
        } else {
            "local"
        }
    };
    let with_2fa: std::collections::HashSet<i64> =
        core.store.users_with_totp().await?.into_iter().collect();
    if json {
        let mut rows = Vec::new();
        for u in &users {
            let grants = core.store.grants_of(u.id).await?;
            rows.push(json!({
                "id": u.id, "username": u.username, "source": source(u.id), "site_admin": u.site_admin, "disabled": u.disabled,
                "sftp_permission": u.sftp_permission, "ftp_permission": u.ftp_permission,
                "dav_permission": u.dav_permission, "restapi_permission": u.restapi_permission,
                "allowed_ips": u.allowed_ips, "created_at": crate::model::format_time(u.created_at),
                "last_login_at": u.last_login_at.map(crate::model::format_time),
                "two_factor": with_2fa.contains(&u.id),
                "grants": grants.iter().map(|g| json!({"id": g.id, "path": g.path, "permission": g.level})).collect::<Vec<_>>(),
            }));
        }
        return print_json(&serde_json::Value::Array(rows));
    }
    println!(
        "{:>5}  {:<24} {:<6} {:<6} {:<9} {:<4} {:<20} last login",
        "id", "username", "source", "admin", "disabled", "2fa", "grants"
    );
    for u in &users {
        let grants = core.store.grants_of(u.id).await?;
        let grants: Vec<String> = grants
            .iter()
            .map(|g| format!("{}:{}", g.path, g.level))
            .collect();
        println!(
            "{:>5}  {:<24} {:<6} {:<6} {:<9} {:<4} {:<20} {}",
            u.id,
            u.username,
            source(u.id),
            if u.site_admin { "yes" } else { "no" },
            if u.disabled { "yes" } else { "no" },
            if with_2fa.contains(&u.id) {
                "on"
            } else {
                "off"
            },
            if grants.is_empty() {
                "-".into()
            } else {
                grants.join(",")
            },
            time_or_dash(u.last_login_at)
        );
    }
    Ok(())
}

/// Turns an account error into a message for the terminal.
pub(super) fn explain(err: AccountError) -> anyhow::Error {
    match err {
        AccountError::NotFound => anyhow::anyhow!("no such user or key"),
        other => anyhow::anyhow!("{other}"),
    }
}
