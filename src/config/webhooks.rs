//! `[webhooks]`: delivery of webhook behaviors (see `webhooks`).

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::ConfigError;

/// Webhook delivery settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Run this replica's delivery worker (rules are matched and queued either way).
    pub enabled: bool,
    /// Ranges a webhook may reach although they are private, loopback or link-local
    /// (`["127.0.0.0/8"]` for a receiver on the same host). Env:
    /// `FILEGATE_WEBHOOKS_ALLOW_PRIVATE` (comma-separated).
    #[serde(deserialize_with = "cidrs")]
    pub allow_private: Vec<IpNet>,
    /// Seconds one request may take (connect, TLS, answer).
    pub timeout_seconds: u64,
    /// Seconds after the event during which a delivery is retried; then it is failed.
    pub max_age_seconds: u64,
    /// First retry delay (milliseconds); doubled per attempt, with ±50 % jitter.
    pub retry_base_ms: u64,
    /// Longest delay between two attempts (milliseconds).
    pub retry_max_ms: u64,
    /// Requests in flight to one host at once.
    pub per_host_concurrency: usize,
    /// Rows one replica claims at once (and requests in flight in total).
    pub batch: usize,
    /// Milliseconds between looks at the outbox when idle (rows written by this replica wake
    /// its worker at once; other replicas' rows are seen within this).
    pub poll_ms: u64,
    /// Extra PEM certificates trusted for https receivers (on-prem CAs); empty: none.
    pub ca_file: PathBuf,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            enabled: true,
            allow_private: Vec::new(),
            timeout_seconds: 10,
            max_age_seconds: 3 * 24 * 3600,
            retry_base_ms: 1000,
            retry_max_ms: 3_600_000,
            per_host_concurrency: 8,
            batch: 64,
            poll_ms: 500,
            ca_file: PathBuf::new(),
        }
    }
}

/// A list of CIDRs, each error naming the bad entry.
fn cidrs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    list.iter()
        .map(|s| {
            s.trim().parse().map_err(|_| {
                serde::de::Error::custom(format!(
                    "webhooks.allow_private: {s:?} is not a CIDR like 127.0.0.0/8"
                ))
            })
        })
        .collect()
}

impl WebhooksConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    /// Applies `FILEGATE_WEBHOOKS_ALLOW_PRIVATE`.
    pub fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let name = "FILEGATE_WEBHOOKS_ALLOW_PRIVATE";
        if let Some(v) = get(name) {
            self.allow_private = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse().map_err(|_| ConfigError::Env {
                        name,
                        message: format!("{s:?} is not a CIDR like 127.0.0.0/8"),
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.timeout_seconds == 0 || self.timeout_seconds > 300 {
            return invalid("webhooks.timeout_seconds must be between 1 and 300");
        }
        if self.max_age_seconds == 0 {
            return invalid("webhooks.max_age_seconds must be at least 1");
        }
        if self.retry_base_ms == 0 || self.retry_max_ms < self.retry_base_ms {
            return invalid("webhooks.retry_base_ms must be at least 1 and at most retry_max_ms");
        }
        if self.per_host_concurrency == 0 || self.batch == 0 || self.batch > 10_000 {
            return invalid(
                "webhooks.per_host_concurrency must be at least 1 and webhooks.batch 1 to 10000",
            );
        }
        if self.poll_ms == 0 {
            return invalid("webhooks.poll_ms must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_list_comes_from_the_environment_and_a_bad_cidr_names_its_variable() {
        let mut c = WebhooksConfig::default();
        c.apply_env(&|n: &str| {
            (n == "FILEGATE_WEBHOOKS_ALLOW_PRIVATE").then(|| "127.0.0.0/8, ::1/128".into())
        })
        .unwrap();
        assert_eq!(c.allow_private.len(), 2);
        let err = c
            .apply_env(&|_: &str| Some("nonsense".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("FILEGATE_WEBHOOKS_ALLOW_PRIVATE"), "{err}");
        assert!(WebhooksConfig::default().validate().is_ok());
        let zero = WebhooksConfig {
            batch: 0,
            ..Default::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn allow_private_reads_cidrs_from_the_file_and_names_a_bad_one() {
        let c: WebhooksConfig =
            toml::from_str("allow_private = [\"127.0.0.0/8\", \"10.1.0.0/16\"]").unwrap();
        assert_eq!(c.allow_private.len(), 2);
        let err = toml::from_str::<WebhooksConfig>("allow_private = [\"10.0.0.300/8\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("webhooks.allow_private"), "{err}");
    }
}
