//! The outside systems a project's `simulators.yaml` names, started in this process for an
//! offline demo: `junction run .` in the repository serves the MasterDeal routes with the LLM
//! simulator (examples/simulators) and needs no network.
//!
//! ```yaml
//! openai: { listen: 127.0.0.1:8085, key: sim-openai-key }
//! ```
//!
//! Only in a build with the `simulators` feature (this workspace's default; a production build
//! leaves it out, and then says it ignores the file). `JUNCTION_SIMULATORS=off` skips them. An
//! address already taken is left to whatever holds it: the real system, or a simulator
//! started by hand.

use std::path::Path;

use serde::Deserialize;

/// The file's name in the project directory.
const FILE: &str = "simulators.yaml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Simulators {
    #[serde(default)]
    openai: Option<OpenAiSim>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "simulators"), allow(dead_code))]
struct OpenAiSim {
    listen: String,
    key: String,
}

/// Starts the simulators `dir/simulators.yaml` lists; says what it did on stderr.
pub(crate) async fn start(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(FILE);
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
    if std::env::var("JUNCTION_SIMULATORS").is_ok_and(|v| v == "off") {
        return Ok(());
    }
    let wanted: Simulators = serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    start_all(wanted).await
}

#[cfg(feature = "simulators")]
async fn start_all(wanted: Simulators) -> anyhow::Result<()> {
    if let Some(sim) = wanted.openai {
        match junction_simulators::openai::OpenAi::start(&sim.listen, &sim.key).await {
            Ok(s) => eprintln!("junction: LLM simulator (OpenAI-compatible) on {}", s.url),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                eprintln!("junction: {} is taken; the LLM is whatever serves there", sim.listen);
            }
            Err(e) => anyhow::bail!("cannot start the LLM simulator on {}: {e}", sim.listen),
        }
    }
    Ok(())
}

#[cfg(not(feature = "simulators"))]
async fn start_all(wanted: Simulators) -> anyhow::Result<()> {
    if wanted.openai.is_some() {
        eprintln!("junction: this build has no simulators (the `simulators` feature); {FILE} is ignored");
    }
    Ok(())
}
