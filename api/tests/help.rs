//! `stampede serve|api|worker|export-catalog --help` lists every setting with its variable
//! and default, and the README's configuration table lists the same settings with the same
//! defaults: a setting added to one and not the other, or a default changed in one, fails
//! here.

use std::collections::BTreeMap;
use std::process::Command;

/// variable -> default (`None`: the help gives none), as a subcommand's help lists them.
fn help_settings(subcommand: &str) -> BTreeMap<String, Option<String>> {
    let out = Command::new(env!("CARGO_BIN_EXE_stampede"))
        .args([subcommand, "--help"])
        .output()
        .expect("run stampede --help");
    assert!(out.status.success(), "{subcommand} --help failed");
    let text = String::from_utf8(out.stdout).expect("UTF-8 help");
    let mut settings = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("--") || line.starts_with("-h") {
            current = None;
        } else if let Some(env) = line
            .strip_prefix("[env: ")
            .and_then(|l| l.strip_suffix(']'))
        {
            let name = env.split('=').next().unwrap_or(env).to_string();
            settings.insert(name.clone(), None);
            current = Some(name);
        } else if let Some(default) = line
            .strip_prefix("[default: ")
            .and_then(|l| l.strip_suffix(']'))
        {
            if let Some(name) = &current {
                settings.insert(name.clone(), Some(default.to_string()));
            }
        }
    }
    settings
}

/// variable -> default cell, from the README's "Configuration" table.
fn readme_settings() -> BTreeMap<String, String> {
    let readme = include_str!("../../README.md");
    let table = readme
        .split("## Configuration")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Configuration section");
    table
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            name.starts_with("STAMPEDE_")
                .then(|| (name.to_string(), cells.get(2).unwrap_or(&"").to_string()))
        })
        .collect()
}

#[test]
fn every_setting_is_in_the_help_and_the_readme_with_the_same_default() {
    let readme = readme_settings();
    assert!(
        readme.len() > 20,
        "the README's table was not found: {readme:?}"
    );
    for subcommand in ["serve", "api", "worker", "export-catalog"] {
        let help = help_settings(subcommand);
        let in_help: Vec<&String> = help.keys().collect();
        let in_readme: Vec<&String> = readme.keys().collect();
        assert_eq!(
            in_help, in_readme,
            "`stampede {subcommand} --help` and the README's table list different settings"
        );
        for (name, default) in &help {
            let cell = &readme[name];
            match default {
                Some(d) => assert!(
                    cell.starts_with(&format!("`{d}`")),
                    "{name}: the help's default is {d:?}, the README says {cell:?}"
                ),
                None => assert!(
                    !cell.starts_with('`'),
                    "{name}: the README gives the default {cell:?}, the help none"
                ),
            }
        }
    }
}
