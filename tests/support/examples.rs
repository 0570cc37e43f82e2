//! Building the project's examples from an integration test, in the test's own profile and
//! target directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `names` and returns `target/<profile>/examples/` (the test binary is
/// `target/<profile>/deps/<test>-<hash>`). `TESSERA_EXAMPLES_DIR` names a directory of
/// already built examples instead.
pub(crate) fn build(names: &[&str]) -> PathBuf {
    if let Some(dir) = std::env::var_os("TESSERA_EXAMPLES_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap();
    let profile = profile_dir.file_name().unwrap().to_str().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).arg("build");
    for name in names {
        cmd.args(["--example", name]);
    }
    cmd.arg("--target-dir").arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "building the examples {names:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    profile_dir.join("examples")
}
