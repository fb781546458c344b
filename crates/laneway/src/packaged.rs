//! The man pages and shell completions the Debian package ships
//! (`pkg/debian/man`, `pkg/debian/completions`), generated from the command
//! line in `cli.rs` with clap_mangen and clap_complete. They are committed
//! so that `cargo deb --no-build` needs nothing but the binary; the test
//! fails when they fall behind `cli.rs` and rewrites them when run with
//! `LANEWAY_REGENERATE=1 cargo test -p laneway packaged_docs`.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// `cmd`'s page, for the words that run it (`laneway queue stats` is
/// `laneway-queue-stats.8`), and its verbs' pages.
fn man_pages(cmd: &clap::Command, words: &[&str], out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let name = words.join("-");
    let mut page = Vec::new();
    clap_mangen::Man::new(
        cmd.clone()
            .display_name(name.clone())
            .bin_name(words.join(" ")),
    )
    .section("8")
    .source(format!("laneway {}", env!("CARGO_PKG_VERSION")))
    .manual("Laneway Manual")
    .render(&mut page)
    .expect("render a man page");
    out.push((PathBuf::from(format!("man/{name}.8")), page));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let words = [words, &[sub.get_name()]].concat();
        man_pages(sub, &words, out);
    }
}

/// Every generated file: its path under `pkg/debian/` and its bytes.
fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    // laneway.8, then one page per verb and sub-verb (laneway-queue.8,
    // laneway-queue-stats.8…), as the SUBCOMMANDS sections refer to them
    man_pages(&Cli::command(), &["laneway"], &mut out);
    for (shell, file) in [
        (Shell::Bash, "laneway.bash"),
        (Shell::Zsh, "_laneway"),
        (Shell::Fish, "laneway.fish"),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "laneway", &mut text);
        out.push((Path::new("completions").join(file), text));
    }
    out
}

#[test]
fn packaged_docs_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pkg/debian");
    let regenerate = std::env::var_os("LANEWAY_REGENERATE").is_some();
    let mut stale = Vec::new();
    for (path, want) in generated() {
        let file = dir.join(&path);
        if std::fs::read(&file).ok().as_deref() == Some(&want[..]) {
            continue;
        }
        if regenerate {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &want).unwrap();
        } else {
            stale.push(path.display().to_string());
        }
    }
    // a verb that is gone leaves no page behind
    let pages: Vec<PathBuf> = generated().into_iter().map(|(p, _)| p).collect();
    for entry in std::fs::read_dir(dir.join("man")).into_iter().flatten() {
        let p = Path::new("man").join(entry.unwrap().file_name());
        if !pages.contains(&p) {
            if regenerate {
                std::fs::remove_file(dir.join(&p)).unwrap();
            } else {
                stale.push(format!("{} (no such verb)", p.display()));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "pkg/debian is behind cli.rs: {stale:?}; run LANEWAY_REGENERATE=1 cargo test -p laneway packaged_docs and commit the result"
    );
    assert!(
        pages.contains(&PathBuf::from("man/laneway-queue.8")),
        "a page per verb"
    );
}
