//! What works without a server: help with examples and exit codes, completions, usage errors.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tongban");

fn run(args: &[&str]) -> anyhow::Result<(i32, String)> {
    let out = Command::new(BIN).args(args).output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    ))
}

#[test]
fn help_documents_exit_codes_and_examples() -> anyhow::Result<()> {
    let (code, text) = run(&["--help"])?;
    assert_eq!(code, 0);
    assert!(text.contains("Exit codes"), "{text}");
    for sub in [
        "dev",
        "login",
        "submit",
        "status",
        "watch",
        "supplement",
        "withdraw",
        "rate",
        "matters",
        "tasks",
        "claim",
        "approve",
        "reject",
        "request-supplement",
        "delegate",
        "show",
        "deliveries",
        "retry",
        "audit",
        "demo",
        "completions",
    ] {
        let (code, text) = run(&[sub, "--help"])?;
        assert_eq!(code, 0, "{sub}: {text}");
        assert!(
            text.contains("Example"),
            "{sub} --help has no example:\n{text}"
        );
    }
    Ok(())
}

#[test]
fn completions_for_each_shell() -> anyhow::Result<()> {
    for shell in ["bash", "zsh", "fish"] {
        let (code, text) = run(&["completions", shell])?;
        assert_eq!(code, 0, "{shell}");
        assert!(text.contains("submit"), "{shell}");
    }
    Ok(())
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() -> anyhow::Result<()> {
    // Exit 2 is reserved for "the server rejected the request"; usage errors are local (1).
    let (code, _) = run(&["supplement", "x", "--material", "name=only"])?;
    assert_eq!(code, 1);
    let (code, _) = run(&["tasks", "--no-such-flag"])?;
    assert_eq!(code, 1);
    let (code, _) = run(&["inbox", "--after", "3"])?;
    assert_eq!(code, 1, "--after needs --follow");
    let (code, _) = run(&["--help"])?;
    assert_eq!(code, 0);
    Ok(())
}

#[test]
fn login_writes_the_config_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("tongban/config.toml");
    let out = Command::new(BIN)
        .args([
            "login",
            "--token",
            "abc.def.ghi",
            "--server",
            "http://10.0.0.5:50051",
        ])
        .env("TONGBAN_CONFIG", &cfg)
        .env_remove("TONGBAN_TOKEN")
        .env_remove("TONGBAN_SERVER")
        .output()?;
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&cfg)?;
    assert!(text.contains("token = \"abc.def.ghi\""), "{text}");
    assert!(text.contains("http://10.0.0.5:50051"), "{text}");
    Ok(())
}
