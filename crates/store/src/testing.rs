//! Throwaway databases for tests, on either engine. SQLite: a file in a fresh temp folder. PostgreSQL: a
//! fresh database on the server named by `ORDERTRAIL_TEST_POSTGRES_URL` (e.g.
//! `postgres://ordertrail:ordertrail@127.0.0.1/postgres`), dropped when the value is dropped. Without that
//! variable, PostgreSQL tests are skipped and say why; with it, a server that cannot be reached fails them.

use std::path::PathBuf;

/// The environment variable naming the PostgreSQL server tests may create databases on.
pub const POSTGRES_URL_VAR: &str = "ORDERTRAIL_TEST_POSTGRES_URL";
/// The environment variable choosing the engine of the HTTP tests: `sqlite` (default) or `postgres`.
pub const ENGINE_VAR: &str = "ORDERTRAIL_TEST_ENGINE";

/// A database that exists for one test.
pub struct TestDatabase {
    /// Where the store opens it.
    pub url: String,
    place: Place,
}

enum Place {
    SqliteFolder(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// A SQLite file in a new temp folder (removed on drop).
    pub fn sqlite() -> TestDatabase {
        let dir = std::env::temp_dir().join(format!("ordertrail-test-{}", uuid::Uuid::now_v7()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create the test folder {}: {e}", dir.display());
        }
        TestDatabase {
            url: format!("sqlite://{}/test.db", dir.display()),
            place: Place::SqliteFolder(dir),
        }
    }

    /// A new, empty PostgreSQL database, or `None` (with a line saying so) when no server is configured.
    /// Panics when one is configured but cannot be reached: a configured run must not silently skip.
    pub async fn postgres(test: &str) -> Option<TestDatabase> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            // Straight to stderr, past the test harness's capture, once per test binary.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: the PostgreSQL runs of these tests (e.g. {test}): {POSTGRES_URL_VAR} is not set; CI sets it (see README)"
                );
            });
            return None;
        };
        let name = format!("ordertrail_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = connect(&admin_url).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create a test database on {admin_url}: {e}"));
        let mut url = url::Url::parse(&admin_url).unwrap_or_else(|e| panic!("bad {POSTGRES_URL_VAR}: {e}"));
        url.set_path(&name);
        Some(TestDatabase {
            url: url.to_string(),
            place: Place::Postgres { admin_url, name },
        })
    }

    /// The database of the engine `ORDERTRAIL_TEST_ENGINE` names (SQLite by default).
    pub async fn for_engine_under_test(test: &str) -> TestDatabase {
        match std::env::var(ENGINE_VAR).as_deref() {
            Ok("postgres") => match TestDatabase::postgres(test).await {
                Some(db) => db,
                None => panic!("{ENGINE_VAR}=postgres needs {POSTGRES_URL_VAR}"),
            },
            _ => TestDatabase::sqlite(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.place, Place::Postgres { .. })
    }
}

async fn connect(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but PostgreSQL does not answer at {url}: {e}"))
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.place {
            Place::SqliteFolder(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Place::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime: drop the database from a thread with its own.
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    runtime.block_on(async {
                        let mut admin = connect(&admin_url).await;
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut admin)
                        .await
                        .ok()
                    })
                });
                let _ = dropped.join();
            }
        }
    }
}
