//! The daemon does not link the lab (DESIGN.md "Workspace layout"; issue 11):
//! a build without the default `lab` feature has no simulator and no benchmark
//! drivers, and says so when asked for `demo`, `lab` or `bench`.

use std::process::Command;

use crate::cli::hotsite;

/// The crates a production build must not link.
const LAB_CRATES: [&str; 2] = ["hotsite-lab", "hotsite-bench"];

/// `cargo tree -p hotsite -e normal` (normal dependencies only, one crate per
/// line), with `extra` arguments; panics unless cargo succeeded, so an empty
/// answer cannot pass for a clean tree.
fn normal_dependencies(extra: &[&str]) -> Vec<String> {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace)
        .args([
            "tree",
            "-p",
            "hotsite",
            "-e",
            "normal",
            "--locked",
            "--offline",
        ])
        .args(["--prefix", "none", "--charset", "ascii"])
        .args(extra)
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo tree {extra:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let crates: Vec<String> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(
        crates.first().is_some_and(|first| first == "hotsite"),
        "{stdout}"
    );
    crates
}

#[test]
fn the_production_build_links_no_lab() {
    let production = normal_dependencies(&["--no-default-features"]);
    for name in LAB_CRATES {
        assert!(
            !production.iter().any(|linked| linked == name),
            "{name} in the production build: {production:?}"
        );
    }
    // The systems are still there: the daemon is whole without the lab.
    for name in ["hotsite-messaging", "hotsite-voice", "hotsite-store"] {
        assert!(production.iter().any(|linked| linked == name), "{name}");
    }
    // The same query sees the lab in the default build, so the check above
    // would notice it.
    let default = normal_dependencies(&[]);
    for name in LAB_CRATES {
        assert!(default.iter().any(|linked| linked == name), "{name}");
    }
}

/// `--help` lists `demo`, `lab` and `bench` exactly when the build has them;
/// without them each says that this build has no lab (exit code 2) instead
/// of clap's bare "unrecognized subcommand".
#[tokio::test]
async fn lab_commands_are_in_the_help_only_with_the_lab() {
    let help = hotsite().arg("--help").output().await.unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    let listed = |command: &str| {
        help.lines()
            .any(|line| line.trim_start().starts_with(&format!("{command} ")))
    };
    for command in ["run", "send", "status", "check-config"] {
        assert!(listed(command), "{command}: {help}");
    }
    for command in ["demo", "lab", "bench"] {
        assert_eq!(listed(command), cfg!(feature = "lab"), "{command}: {help}");
    }
    if cfg!(feature = "lab") {
        return;
    }
    for args in [
        &["demo"][..],
        &["demo", "--scenario", "dns-move"],
        &["lab", "--config", "examples/lab.toml"],
        &["bench", "--help"],
    ] {
        let output = hotsite().args(args).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "hotsite {}: this build of hotsite has no lab",
                args[0]
            )),
            "{args:?}: {stderr}"
        );
    }
}
