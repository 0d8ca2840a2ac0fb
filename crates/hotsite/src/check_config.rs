//! `hotsite check-config FILE`: validates a gateway or lab configuration offline,
//! with the same code the daemon and the lab run at start.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{line_of, Config};

/// What kind of file it is: a lab file has everything under `[lab]`.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Gateway,
    Lab,
}

/// Validates `file`; prints a summary or every problem. Exit code 2 on errors.
pub(crate) fn run(file: &Path) -> ExitCode {
    let shown = file.display();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("{shown}: cannot read: {error}");
            return ExitCode::from(2);
        }
    };
    match check(&text) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_files_are_valid() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
        for name in ["hotsite.toml", "lab.toml"] {
            let text = std::fs::read_to_string(format!("{root}/{name}")).unwrap();
            assert!(check(&text).is_ok(), "{name}: {:?}", check(&text));
        }
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let problems = check("[site]\nname = \n").unwrap_err();
        assert!(problems[0].starts_with("line 2: "), "{problems:?}");
    }

    #[test]
    fn lab_files_are_checked_as_labs() {
        let problems = check("[lab]\naccounts = []\nsites = []\n").unwrap_err();
        assert!(problems[0].starts_with("lab."), "{problems:?}");
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
