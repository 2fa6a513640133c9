//! The outside systems a project's `simulators.yaml` names, served in this process for an
//! offline demo: `junction run .` in the repository serves the MasterDeal routes with the
//! simulators of examples/simulators and needs no network. The file's entries and their
//! settings are [`junction_simulators::demo::Demo`]'s:
//!
//! ```yaml
//! openai: { listen: 127.0.0.1:8085, key: sim-openai-key }
//! amocrm: {}
//! ```
//!
//! Only in a build with the `simulators` feature (this workspace's default; a production build
//! leaves it out, and then says it ignores the file). `JUNCTION_SIMULATORS=off` skips them. An
//! address already taken is left to whatever holds it: the real system, or a simulator
//! started by hand.

use std::path::Path;

/// The file's name in the project directory.
const FILE: &str = "simulators.yaml";

/// Starts the simulators `dir/simulators.yaml` lists; says what it did on stderr.
pub(crate) async fn start(dir: &Path) -> anyhow::Result<()> {
    if std::env::var("JUNCTION_SIMULATORS").is_ok_and(|v| v == "off") {
        return Ok(());
    }
    let path = dir.join(FILE);
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
    start_all(&path, &text).await
}

#[cfg(feature = "simulators")]
async fn start_all(path: &Path, text: &str) -> anyhow::Result<()> {
    let wanted: junction_simulators::demo::Demo =
        serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for (name, started) in wanted.start().await {
        match started {
            Ok(url) => eprintln!("junction: {name} simulator on {url}"),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                eprintln!("junction: the {name} simulator's address is taken; whatever serves there stands in");
            }
            Err(e) => anyhow::bail!("cannot start the {name} simulator ({}): {e}", path.display()),
        }
    }
    Ok(())
}

#[cfg(not(feature = "simulators"))]
async fn start_all(path: &Path, _text: &str) -> anyhow::Result<()> {
    eprintln!("junction: this build has no simulators (the `simulators` feature); {} is ignored", path.display());
    Ok(())
}
