//! Helpers for tests (unit and integration): throw-away databases and folders.
//!
//! Not part of the server; compiled into the library so `tests/` can use it too.

use std::path::{Path, PathBuf};

use crate::store::Store;

/// The environment variable naming a PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "FILEGATE_TEST_POSTGRES_URL";

/// A folder removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("filegate-{label}-{}", crate::secret::random_hex(6)));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store in a fresh database of its own.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(#[allow(dead_code)] TempDir),
    Postgres { admin_url: String, database: String },
}

impl TestDb {
    /// A SQLite database in a temporary file.
    pub async fn sqlite() -> TestDb {
        let dir = TempDir::new("db");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = Store::connect(&url).await.expect("open sqlite test db");
        TestDb {
            store,
            url,
            cleanup: Cleanup::Dir(dir),
        }
    }

    /// A new PostgreSQL database on the server at `FILEGATE_TEST_POSTGRES_URL`, or `None`
    /// when the variable is unset.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = std::env::var(POSTGRES_ENV).ok().filter(|s| !s.is_empty())?;
        let database = format!("filegate_test_{}", crate::secret::random_hex(6));
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to test postgres");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &database);
        let store = Store::connect(&url).await.expect("open postgres test db");
        Some(TestDb {
            store,
            url,
            cleanup: Cleanup::Postgres {
                admin_url,
                database,
            },
        })
    }

    /// SQLite always; PostgreSQL too when configured (a note is printed when it is not).
    pub async fn all() -> Vec<TestDb> {
        let mut dbs = vec![TestDb::sqlite().await];
        match TestDb::postgres().await {
            Some(db) => dbs.push(db),
            None => eprintln!("note: {POSTGRES_ENV} unset: PostgreSQL half of this test not run"),
        }
        dbs
    }

    /// Closes the store and removes the database.
    pub async fn drop(self) {
        self.store.close().await;
        if let Cleanup::Postgres {
            admin_url,
            database,
        } = &self.cleanup
        {
            use sqlx::Connection;
            if let Ok(mut admin) = sqlx::PgConnection::connect(admin_url).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await;
                let _ = admin.close().await;
            }
        }
    }
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{database}?{q}"),
        None => format!("{root}/{database}"),
    }
}

/// An audit sink that keeps events in memory.
#[derive(Default)]
pub struct MemorySink(std::sync::Mutex<Vec<crate::audit::AuditEvent>>);

impl MemorySink {
    pub fn events(&self) -> Vec<crate::audit::AuditEvent> {
        self.0.lock().expect("sink lock").clone()
    }

    /// The last event recorded.
    pub fn last(&self) -> Option<crate::audit::AuditEvent> {
        self.0.lock().expect("sink lock").last().cloned()
    }
}

impl crate::audit::AuditSink for MemorySink {
    fn record(&self, event: crate::audit::AuditEvent) {
        self.0.lock().expect("sink lock").push(event);
    }
}

/// A principal for a user with `grants`, optionally signed in with a key.
pub fn principal(
    grants: &[(&str, crate::identity::GrantLevel)],
    key: Option<(Option<&str>, crate::identity::PermissionSet)>,
) -> crate::identity::Principal {
    use crate::identity::{ClientInfo, Grant, KeyIdentity, Principal, Protocol, UserIdentity};
    use crate::path::SitePath;
    Principal {
        user: Some(UserIdentity {
            id: 1,
            username: "tester".into(),
            revision: 1,
        }),
        key: key.map(|(path, permission_set)| KeyIdentity {
            id: 7,
            name: "test-key".into(),
            permission_set,
            path: path.map(|p| SitePath::from_key_path(p).expect("valid key path")),
            revision: 1,
        }),
        site_admin: false,
        grants: grants
            .iter()
            .map(|(path, level)| Grant {
                path: SitePath::parse(path).expect("valid path"),
                level: *level,
            })
            .collect(),
        protocol: Protocol::Sftp,
        client: ClientInfo::new(Some(std::net::IpAddr::from([127, 0, 0, 1]))),
    }
}
