//! How the command-line programs end: an error is one clear line on stderr and exit status 1;
//! the cause chain's details and a backtrace only when `RUST_BACKTRACE` asks for them.

use std::process::ExitCode;

/// The exit of a program named `program` that ended with `result`.
pub fn exit(program: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let detailed = std::env::var("RUST_BACKTRACE").is_ok_and(|v| v != "0");
            if detailed {
                eprintln!("{program}: error: {e:?}");
            } else {
                eprintln!("{program}: error: {}", one_line(&e));
            }
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_join_on_one_line_without_repeats() {
        let e = anyhow::anyhow!("connection refused\n(os error 111)")
            .context("failed to connect to PostgreSQL");
        assert_eq!(
            one_line(&e),
            "failed to connect to PostgreSQL: connection refused (os error 111)"
        );
    }
}
