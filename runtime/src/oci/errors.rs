//! libcontainer's errors as one line, in runc's words where engines match them.

/// libcontainer's errors wrap their cause; show the whole chain on one line,
/// in runc's words where engines match on them.
pub fn libcontainer_message(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    runc_phrases(msg)
}

/// libcontainer says "executable 'X' not found in $PATH" for a missing
/// program and "... does not have correct permissions" for one that cannot be
/// run; engines recognise runc's texts instead (podman turns "no such file or
/// directory" / "executable file not found" into exit code 127 and
/// "permission denied" into 126).
fn runc_phrases(msg: String) -> String {
    let quoted = |rest: &str| rest.split_once('\'').map(|(name, _)| name.to_string());
    if let Some(at) = msg.find("executable '") {
        let rest = &msg[at + "executable '".len()..];
        if let Some(name) = quoted(rest) {
            let tail = &rest[name.len()..];
            if tail.starts_with("' not found in $PATH") {
                return if name.contains('/') {
                    format!("exec: \"{name}\": stat {name}: no such file or directory")
                } else {
                    format!("exec: \"{name}\": executable file not found in $PATH")
                };
            }
            if tail.contains("does not have correct permissions") {
                return format!("exec: \"{name}\": permission denied");
            }
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_unrunnable_executables_in_runcs_words() {
        let m = |s: &str| runc_phrases(s.to_string());
        let lc = "failed to create container: exec process failed with error error in executing process : ";
        assert_eq!(
            m(&format!("{lc}executable '/nonexistent' not found in $PATH")),
            "exec: \"/nonexistent\": stat /nonexistent: no such file or directory"
        );
        assert_eq!(
            m(&format!("{lc}executable 'nope' not found in $PATH")),
            "exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(
            m(&format!(
                "{lc}executable '/etc/passwd' at path '\"/etc/passwd\"' does not have correct permissions"
            )),
            "exec: \"/etc/passwd\": permission denied"
        );
        assert_eq!(m("something else"), "something else");
    }
}
