//! Runs every `.slt` file over the wire.
//!
//! - `sql-tests/postgres/*.slt` against Floe, and against PostgreSQL 15 when its binaries are
//!   installed (required when `FLOE_REQUIRE_POSTGRES=1`, as in CI): the expected outputs must be
//!   real PostgreSQL behaviour.
//! - `sql-tests/floe/*.slt` (Floe-only features) against Floe.
//!
//! `SLT_TARGET=floe` or `SLT_TARGET=postgres` runs one side only; `SLT_FILTER=substring` picks
//! files by name. `SLT_TARGET=floe-cold` runs the Floe side on a server that checkpoints every
//! few kilobytes of log and moves every settled row into cold runs each time (`--flush-age 0`),
//! so the files read rows through the cold tier and its compactions.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use floe_sql_tests::{SltDb, TestServer};

fn slt_files(dir: &Path) -> Vec<PathBuf> {
    let filter = std::env::var("SLT_FILTER").unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "slt"))
                .filter(|p| p.to_string_lossy().contains(&filter))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

async fn run_files(server: &TestServer, files: &[PathBuf], failures: &mut Vec<String>) {
    for file in files {
        let mut runner = sqllogictest::Runner::new(|| SltDb::connect(server));
        runner.add_label(match server.kind() {
            floe_sql_tests::ServerKind::Floe => "floe",
            floe_sql_tests::ServerKind::Postgres => "postgres",
        });
        let label = format!("{:?} {}", server.kind(), file.display());
        match runner.run_file_async(file).await {
            Ok(()) => println!("ok    {label}"),
            Err(e) => {
                println!("FAIL  {label}");
                failures.push(format!("{label}\n{}", e.display(true)));
            }
        }
    }
}

fn main() -> ExitCode {
    // The directory cargo runs the test for, not the one it was compiled in: build artifacts
    // are shared across clones (one CARGO_TARGET_DIR), and a binary reused from another clone
    // would otherwise read that clone's files, or none once it is gone.
    let root = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    );
    let postgres_files = slt_files(&root.join("postgres"));
    let floe_files = slt_files(&root.join("floe"));
    if postgres_files.is_empty() && std::env::var("SLT_FILTER").is_err() {
        eprintln!(
            "no .slt files found in {}: nothing would be tested",
            root.join("postgres").display()
        );
        return ExitCode::FAILURE;
    }
    let target = std::env::var("SLT_TARGET").unwrap_or_default();
    let require_pg = std::env::var("FLOE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut failures = Vec::new();

    if target.is_empty() || target == "floe" || target == "floe-cold" {
        let server = match target.as_str() {
            "floe-cold" => {
                TestServer::start_floe_with(&["--flush-age", "0", "--checkpoint-log-size", "8kB"])
            }
            _ => TestServer::start_floe(),
        };
        let mut all = postgres_files.clone();
        all.extend(floe_files);
        runtime.block_on(run_files(&server, &all, &mut failures));
    }
    if target.is_empty() || target == "postgres" {
        if TestServer::postgres_available() {
            let server = TestServer::start_postgres();
            runtime.block_on(run_files(&server, &postgres_files, &mut failures));
        } else if require_pg || target == "postgres" {
            failures.push(format!(
                "PostgreSQL 15 is required but not installed at {}",
                floe_sql_tests::PG_BIN_DIR
            ));
        } else {
            println!(
                "skip  PostgreSQL 15 not installed: sql-tests/postgres not checked against it"
            );
        }
    }

    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        for f in &failures {
            eprintln!("\n{f}");
        }
        eprintln!("\n{} sqllogictest file(s) failed", failures.len());
        ExitCode::FAILURE
    }
}
