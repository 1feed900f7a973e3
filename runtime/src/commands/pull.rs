//! `pull IMAGE`, and `run --pull missing|always|never`: images from
//! registries, with docker's progress output (bars on a terminal, one line
//! per layer otherwise, nothing but the name with `-q`).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use minirun_images::{auth, Image, PullEvent, PullOptions, PullProgress, Pulled, Store};

use super::Env;
use crate::cli::{PullArgs, PullPolicy, RegistryOpts, RunArgs};

pub fn run(env: &Env, a: &PullArgs) -> Result<u8> {
    let store = env.ctx().store()?;
    let pulled = pull(
        &store,
        &a.image,
        &a.registry,
        a.platform.as_deref(),
        a.quiet,
        Stream::Stdout,
    )?;
    println!("{}", pulled.full);
    Ok(0)
}

/// The image `run` uses, pulled first as `--pull` says.
pub fn for_run(store: &Store, image_ref: &str, a: &RunArgs) -> Result<Image> {
    let pull_it = |quiet| {
        pull(
            store,
            image_ref,
            &a.registry,
            a.platform.as_deref(),
            quiet,
            Stream::Stderr,
        )
    };
    match a.pull {
        PullPolicy::Never => Ok(store.resolve(image_ref)?),
        PullPolicy::Always => {
            pull_it(a.quiet)?;
            Ok(store.resolve(image_ref)?)
        }
        PullPolicy::Missing => match store.resolve(image_ref) {
            Err(minirun_images::Error::NotFound { .. }) => {
                if !a.quiet {
                    eprintln!("Unable to find image '{image_ref}' locally");
                }
                pull_it(a.quiet)?;
                Ok(store.resolve(image_ref)?)
            }
            other => Ok(other?),
        },
    }
}

/// Where progress goes: stdout for `pull`, stderr for `run` (its stdout is the container's).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Pull with credentials from the usual files and progress on `stream`.
pub fn pull(
    store: &Store,
    reference: &str,
    registry: &RegistryOpts,
    platform: Option<&str>,
    quiet: bool,
    stream: Stream,
) -> Result<Pulled> {
    let domain = minirun_images::registry_of(reference)?;
    let credentials = auth::lookup(&domain, registry.authfile.as_deref())?;
    let opts = PullOptions {
        platform: platform.map(str::to_string),
        tls_verify: registry.tls_verify,
        cert_dir: registry.cert_dir.clone(),
        credentials,
        max_concurrent: 0,
    };
    let terminal = match stream {
        Stream::Stdout => std::io::stdout().is_terminal(),
        Stream::Stderr => std::io::stderr().is_terminal(),
    };
    let progress: Box<dyn Reporter> = match (quiet, terminal) {
        (true, _) => Box::new(Quiet),
        (false, true) => Box::new(Bars::new(stream)),
        (false, false) => Box::new(Lines { stream }),
    };
    let parsed_tag = reference.rsplit_once('@').is_none();
    if parsed_tag && !reference.rsplit('/').next().unwrap_or(reference).contains(':') {
        progress.line("Using default tag: latest");
    }
    let pulled = store.pull(reference, &opts, &*progress);
    progress.finish();
    // The store's errors name the reference and the registry already.
    let pulled = pulled?;
    progress.line(&format!("Digest: {}", pulled.digest));
    progress.line(&match pulled.downloaded {
        0 => format!("Status: Image is up to date for {}", pulled.reference),
        _ => format!("Status: Downloaded newer image for {}", pulled.reference),
    });
    Ok(pulled)
}

trait Reporter: PullProgress {
    fn line(&self, text: &str);
    fn finish(&self) {}
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

fn write_line(stream: Stream, text: &str) {
    // Progress is best effort: a closed stdout must not fail the pull.
    let _ = match stream {
        Stream::Stdout => writeln!(std::io::stdout(), "{text}"),
        Stream::Stderr => writeln!(std::io::stderr(), "{text}"),
    };
}

struct Quiet;

impl PullProgress for Quiet {
    fn event(&self, _: PullEvent<'_>) {}
}

impl Reporter for Quiet {
    fn line(&self, _: &str) {}
}

/// One line per layer, for logs and pipes.
struct Lines {
    stream: Stream,
}

impl PullProgress for Lines {
    fn event(&self, event: PullEvent<'_>) {
        match event {
            PullEvent::LayerExists { digest } => write_line(self.stream, &format!("{}: Already exists", short(digest))),
            PullEvent::LayerSkipped { digest, media_type } => write_line(
                self.stream,
                &format!(
                    "{}: Skipped foreign layer ({media_type}): not distributable",
                    short(digest)
                ),
            ),
            PullEvent::LayerDone { digest } => write_line(self.stream, &format!("{}: Pull complete", short(digest))),
            _ => {}
        }
    }
}

impl Reporter for Lines {
    fn line(&self, text: &str) {
        write_line(self.stream, text);
    }
}

/// docker's terminal view: a bar per layer and a summary line.
struct Bars {
    multi: MultiProgress,
    /// The bars are done: lines go below them.
    finished: std::sync::atomic::AtomicBool,
    state: Mutex<BarState>,
    stream: Stream,
}

#[derive(Default)]
struct BarState {
    layers: Vec<(String, ProgressBar)>,
    total: Option<ProgressBar>,
}

impl Bars {
    fn new(stream: Stream) -> Bars {
        let target = match stream {
            Stream::Stdout => ProgressDrawTarget::stdout(),
            Stream::Stderr => ProgressDrawTarget::stderr(),
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            finished: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(BarState::default()),
            stream,
        }
    }

    fn bar(&self, state: &mut BarState, digest: &str) -> ProgressBar {
        if let Some((_, bar)) = state.layers.iter().find(|(d, _)| d == digest) {
            return bar.clone();
        }
        let bar = ProgressBar::new(0).with_prefix(short(digest).to_string());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix}: {msg:<16} {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        let bar = match &state.total {
            Some(total) => self.multi.insert_before(total, bar),
            None => self.multi.add(bar),
        };
        state.layers.push((digest.to_string(), bar.clone()));
        bar
    }
}

impl PullProgress for Bars {
    fn event(&self, event: PullEvent<'_>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            PullEvent::Resolved { missing, .. } if missing > 0 => {
                let total = self.multi.add(ProgressBar::new(0));
                total.set_style(
                    ProgressStyle::with_template(
                        "Downloading {msg}: {bytes} of {total_bytes} at {bytes_per_sec}, {elapsed}",
                    )
                    .expect("a valid template"),
                );
                total.set_message(format!("{missing} layer(s)"));
                total.enable_steady_tick(Duration::from_millis(200));
                state.total = Some(total);
            }
            PullEvent::Resolved { .. } => {}
            PullEvent::LayerExists { digest } => {
                let bar = self.bar(&mut state, digest);
                bar.finish_with_message("Already exists");
            }
            PullEvent::LayerSkipped { digest, .. } => {
                let bar = self.bar(&mut state, digest);
                bar.finish_with_message("Skipped (foreign)");
            }
            PullEvent::LayerStart { digest, size } => {
                let bar = self.bar(&mut state, digest);
                bar.set_length(size);
                bar.set_message("Downloading");
                if let Some(total) = &state.total {
                    total.inc_length(size);
                }
            }
            PullEvent::LayerBytes { digest, bytes } => {
                self.bar(&mut state, digest).inc(bytes);
                if let Some(total) = &state.total {
                    total.inc(bytes);
                }
            }
            PullEvent::LayerDone { digest } => {
                self.bar(&mut state, digest).finish_with_message("Pull complete");
            }
        }
    }
}

impl Reporter for Bars {
    fn line(&self, text: &str) {
        if self.finished.load(std::sync::atomic::Ordering::Relaxed) || self.multi.println(text).is_err() {
            write_line(self.stream, text);
        }
    }

    fn finish(&self) {
        self.finished.store(true, std::sync::atomic::Ordering::Relaxed);
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (_, bar) in &state.layers {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
        if let Some(total) = &state.total {
            total.finish();
        }
    }
}
