//! `hotsite check-config FILE`: validates a gateway or lab configuration offline,
//! with the same code the daemon and the lab run at start.
//!
//! `--runtime` also checks what only this host can say, for a gateway file:
//! that every listen address can be bound now (`api.listen`, `voice.listen`,
//! TCP and UDP), that the store can be opened or created in its directory
//! (SQLite) or its server answers (PostgreSQL),
//! and that the recording's signing key loads and its folder can be made.
//! It is a flag, not the default: checking the file of a gateway that is
//! running (or on a build machine) must not fail because its ports are taken.

use std::path::Path;
use std::process::ExitCode;

use hotsite_store::PgOptions;
use tokio_postgres::config::SslMode;

use crate::config::{line_of, Config, StoreChoice};

/// What kind of file it is: a lab file has everything under `[lab]`.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Gateway,
    Lab,
}

/// Validates `file`; prints a summary or every problem. Exit code 2 on errors.
/// With `runtime`, also binds every listen address and probes the store.
pub(crate) fn run(file: &Path, runtime: bool) -> ExitCode {
    let shown = file.display();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("{shown}: cannot read: {error}");
            return ExitCode::from(2);
        }
    };
    let checked = check(&text).and_then(|summary| {
        if !runtime {
            return Ok(summary);
        }
        let (problems, store) = match Config::from_toml_str(&text) {
            Ok(config) => (
                runtime_problems(&config),
                match config.store {
                    StoreChoice::Sqlite { .. } => "store writable",
                    StoreChoice::Postgres(_) => "database answering",
                },
            ),
            // A lab file: nothing of a gateway to bind.
            Err(_) => (Vec::new(), "store writable"),
        };
        if problems.is_empty() {
            Ok(format!("{summary}; listen addresses free, {store}"))
        } else {
            Err(problems)
        }
    });
    match checked {
        Ok(summary) => {
            println!("{shown}: ok ({summary})");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in problems {
                eprintln!("{shown}: {problem}");
            }
            ExitCode::from(2)
        }
    }
}

/// A one-line summary of a valid file, or every problem found.
fn check(text: &str) -> Result<String, Vec<String>> {
    let table: toml::Table = toml::from_str(text).map_err(|error| {
        let at = error
            .span()
            .map(|span| line_of(text, span.start))
            .unwrap_or(1);
        vec![format!("line {at}: {}", error.message().trim())]
    })?;
    let kind = if table.contains_key("lab") {
        Kind::Lab
    } else {
        Kind::Gateway
    };
    match kind {
        Kind::Gateway => {
            let config = Config::from_toml_str(text)
                .map_err(|error| error.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
            Ok(format!(
                "gateway for site {}: {}",
                config.site,
                config.summary()
            ))
        }
        #[cfg(not(feature = "lab"))]
        Kind::Lab => Err(vec![format!("a lab file: {}", crate::no_lab::NO_LAB)]),
        #[cfg(feature = "lab")]
        Kind::Lab => {
            let config = hotsite_lab::LabConfig::from_toml_str(text)
                .map_err(|error| vec![error.to_string()])?;
            let instances: usize = config.sites.iter().map(|site| site.smsc.len()).sum();
            Ok(format!(
                "lab: {} sites, {instances} SMSC instances, {} accounts",
                config.sites.len(),
                config.accounts.len()
            ))
        }
    }
}

/// What stops this gateway from starting on this host now, each naming its key.
fn runtime_problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let api = config.host.listen;
    if let Err(error) = std::net::TcpListener::bind(api) {
        problems.push(format!("api.listen: cannot listen on {api}: {error}"));
    }
    if let Some(voice) = &config.voice {
        let listen = &voice.listen;
        // The proxy takes SIP over UDP and TCP on the same port.
        if let Err(error) = std::net::UdpSocket::bind(listen.as_str()) {
            problems.push(format!(
                "voice.listen: cannot listen on {listen} (UDP): {error}"
            ));
        }
        if let Err(error) = std::net::TcpListener::bind(listen.as_str()) {
            problems.push(format!(
                "voice.listen: cannot listen on {listen} (TCP): {error}"
            ));
        }
    }
    if let Some(listen) = config
        .continuity
        .as_ref()
        .and_then(|site| site.listen.as_deref())
    {
        if let Err(error) = std::net::UdpSocket::bind(listen) {
            problems.push(format!(
                "site.listen: cannot listen on {listen} (UDP): {error}"
            ));
        }
    }
    if let Some(recording) = &config.recording {
        // The key must load as the daemon loads it (format, mode 0600).
        if let Err(error) =
            hotsite_recording::manifest::keys::load_signing_key(&recording.signing_key)
        {
            problems.push(format!("recording.signing_key: {error}"));
        }
        if let Err(error) = std::fs::create_dir_all(&recording.dir) {
            problems.push(format!(
                "recording.dir: cannot create {}: {error}",
                recording.dir.display()
            ));
        }
    }
    if !config.messaging {
        return problems;
    }
    match &config.store {
        StoreChoice::Sqlite { path, .. } => {
            if let Err(reason) = probe_store(path) {
                problems.push(format!("store.path: {reason}"));
            }
        }
        StoreChoice::Postgres(options) => {
            if let Err(reason) = probe_postgres(options) {
                problems.push(format!("store.url: {reason}"));
            }
        }
    }
    problems
}

/// Whether the PostgreSQL server `options` names answers a query, within the
/// connect timeout (the query gets as long again): one connection with the
/// URL's user and database, `SELECT 1`, closed. Creates nothing: the gateway
/// makes its schema at its first start. The reason names where it tried,
/// never the password.
fn probe_postgres(options: &PgOptions) -> Result<(), String> {
    let mut config: tokio_postgres::Config = options
        .url
        .parse()
        .map_err(|error| format!("the URL does not parse: {error}"))?;
    let shown = options.hosts().map_err(|error| error.to_string())?;
    // The gateway does not speak TLS to PostgreSQL (config validation refuses
    // a URL that asks for it); neither does the probe.
    config.ssl_mode(SslMode::Disable);
    config.connect_timeout(options.connect_timeout);
    let limit = options.connect_timeout * 2;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start a runtime to reach PostgreSQL: {error}"))?;
    let answered = runtime.block_on(async {
        tokio::time::timeout(limit, async {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            let connection = tokio::spawn(connection);
            let answer = client.simple_query("SELECT 1").await.map(|_| ());
            drop(client);
            let _ = connection.await;
            answer
        })
        .await
    });
    match answered {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!(
            "cannot reach PostgreSQL at {shown}: {}",
            with_causes(&error)
        )),
        Err(_) => Err(format!(
            "cannot reach PostgreSQL at {shown}: no answer within {limit:?}"
        )),
    }
}

/// `error` and the errors under it ("error connecting to server: Connection
/// refused (os error 111)"), each once.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text = format!("{text}: {inner_text}");
        }
        cause = inner.source();
    }
    text
}

/// Whether the store at `path` can be opened (an existing file: readable and
/// writable, an SQLite database) or created, and its directory takes the
/// journal files SQLite writes next to it. Neither keeps, locks nor leaves
/// anything: the probe file is removed, an existing store is not changed.
fn probe_store(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let shown = path.display();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if path.exists() {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|error| format!("cannot open {shown} for reading and writing: {error}"))?;
        let mut header = [0u8; 16];
        let read = file
            .read(&mut header)
            .map_err(|error| format!("cannot read {shown}: {error}"))?;
        if read > 0 && header[..read] != b"SQLite format 3\0"[..read] {
            return Err(format!("{shown} exists and is not an SQLite database"));
        }
    }
    let probe = dir.join(format!(".hotsite-check-config-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|error| {
            format!(
                "cannot create files in {} (the store and its journal live there): {error}",
                dir.display()
            )
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/hotsite.toml"
        ))
        .unwrap()
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "hotsite-check-config-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Invariant 3: `--runtime` reports a port in use and an unusable store
    /// directory, each naming its key; a free port and a writable directory
    /// pass, and nothing is left behind.
    #[test]
    fn runtime_check_binds_the_listeners_and_probes_the_store() {
        let dir = temp_dir("runtime");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let store = dir.join("hotsite.db");
        let text = example()
            .replace("127.0.0.1:28080", &format!("127.0.0.1:{port}"))
            .replace(
                "path = \"hotsite.db\"",
                &format!(
                    "path = {:?}",
                    dir.join("missing/hotsite.db").display().to_string()
                ),
            );
        let problems = runtime_problems(&Config::from_toml_str(&text).unwrap());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with(&format!("api.listen: cannot listen on 127.0.0.1:{port}")),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("store.path: cannot create files in"),
            "{problems:?}"
        );

        std::fs::write(&store, b"not a database").unwrap();
        let text = example().replace("127.0.0.1:28080", "127.0.0.1:0").replace(
            "path = \"hotsite.db\"",
            &format!("path = {:?}", store.display().to_string()),
        );
        let problems = runtime_problems(&Config::from_toml_str(&text).unwrap());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("is not an SQLite database"),
            "{problems:?}"
        );

        std::fs::remove_file(&store).unwrap();
        assert_eq!(
            runtime_problems(&Config::from_toml_str(&text).unwrap()),
            Vec::<String>::new()
        );
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "nothing left behind: {left:?}");
        let _ = std::fs::remove_dir_all(&dir);
        drop(taken);
    }

    #[test]
    fn example_files_are_valid() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
        // A build without the lab refuses lab files (lab_files_need_the_lab).
        let names: &[&str] = if cfg!(feature = "lab") {
            &["hotsite.toml", "lab.toml"]
        } else {
            &["hotsite.toml"]
        };
        for name in names {
            let text = std::fs::read_to_string(format!("{root}/{name}")).unwrap();
            assert!(check(&text).is_ok(), "{name}: {:?}", check(&text));
        }
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let problems = check("[site]\nname = \n").unwrap_err();
        assert!(problems[0].starts_with("line 2: "), "{problems:?}");
    }

    #[cfg(feature = "lab")]
    #[test]
    fn lab_files_are_checked_as_labs() {
        let problems = check("[lab]\naccounts = []\nsites = []\n").unwrap_err();
        assert!(problems[0].starts_with("lab."), "{problems:?}");
    }

    /// A production build links no lab (DESIGN.md "Workspace layout"), so it
    /// says that of a lab file, even a valid one, instead of misreading it.
    #[cfg(not(feature = "lab"))]
    #[test]
    fn lab_files_need_the_lab() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
        let text = std::fs::read_to_string(format!("{root}/lab.toml")).unwrap();
        let problems = check(&text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("this build of hotsite has no lab"),
            "{problems:?}"
        );
    }

    /// SPEC M5: the rebind bound is enforced by check-config too.
    #[test]
    fn gateway_errors_name_the_key() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/hotsite.toml"
        ))
        .unwrap()
        .replace("rebind_interval = \"35s\"", "rebind_interval = \"5s\"");
        let problems = check(&text).unwrap_err();
        assert!(
            problems[0].starts_with("smpp.rebind_interval: "),
            "{problems:?}"
        );
    }
}
