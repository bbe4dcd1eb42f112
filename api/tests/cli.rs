//! The `fuze-api` binary's command line (this test also makes cargo build the binary that the
//! end-to-end tests start and kill).

use std::process::Command;

#[test]
fn an_unknown_command_prints_the_usage_and_fails() {
    let out = Command::new(env!("CARGO_BIN_EXE_fuze-api"))
        .arg("no-such-command")
        .env("FUZE_API_PORT", "0")
        .output()
        .expect("run fuze-api");
    assert!(!out.status.success(), "an unknown command must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unrecognized subcommand 'no-such-command'")
            && stderr.contains("Usage: fuze-api [COMMAND]"),
        "{stderr}"
    );
}
