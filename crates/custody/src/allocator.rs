//! The memory allocator: jemalloc, tuned to give memory back.
//!
//! A sidecar shares its pod's memory limit, and a burst of large bodies (held for
//! inspection, see `limits.buffer_budget`) must not leave custody's resident size
//! at its peak afterwards. glibc's malloc keeps such memory: after a large block is
//! freed it raises its mmap threshold (up to 32 MiB), so later bodies come from
//! per-thread arenas that are trimmed only at their top. jemalloc with the settings
//! below purges freed pages from a background thread: dirty pages after about a
//! second (`dirty_decay_ms:1000`), with no lazily-freed "muzzy" stage
//! (`muzzy_decay_ms:0`), so the kernel gets them back within seconds even when
//! custody is otherwise idle.
//!
//! Each thread also keeps a cache of freed blocks (jemalloc's tcache) that the
//! background thread cannot purge: only the owning thread flushes it, as it
//! allocates, so a thread that goes idle after a burst keeps its cache. With
//! jemalloc's default, blocks up to 32 KiB are cached (hundreds per size class),
//! and the roller's thread kept about 2 MiB of Parquet buffers that way after a
//! load ended. `tcache_max:8192` caches only blocks up to 8 KiB: the sizes a
//! request allocates, up to the 8 KiB read buffer hyper takes anew for each
//! message on both connections (with a 4 KiB limit those two took jemalloc's slow
//! path on every request: 2.5 % of custody's instructions). Larger blocks come
//! from the thread's arena, whose freed pages the background thread does purge.
//! Measured side by side (docs/performance.md, "Memory after the load" and
//! "Instructions per request"): 2 MiB less at peak and a minute after the load
//! than jemalloc's default of 32 KiB, and the heap back within 2 MiB of idle.
//!
//! The settings are compiled in (`JEMALLOC_SYS_WITH_MALLOC_CONF` in
//! `.cargo/config.toml`), which needs no `unsafe` here. A build made without that
//! file still turns the background thread on at start ([`tune`]); its decay is then
//! jemalloc's default (10 s), and the start-up log says so.
//!
//! The `jemalloc` feature (on by default) selects it; `--no-default-features`
//! builds custody with the system's malloc (for a platform jemalloc does not
//! support, or to compare).

use tikv_jemallocator::Jemalloc;

#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

/// The settings this workspace compiles in.
pub(crate) const EXPECTED_CONF: &str =
    "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,tcache_max:8192";

/// The settings compiled into jemalloc (`config.malloc_conf`, without the C
/// string's terminating NUL).
fn compiled_conf() -> &'static str {
    tikv_jemalloc_ctl::config::malloc_conf::read()
        .unwrap_or("")
        .trim_end_matches('\0')
}

/// Turns jemalloc's background purging thread on (if the build did not) and logs
/// the allocator's settings.
pub(crate) fn tune() {
    let conf = compiled_conf();
    let background = tikv_jemalloc_ctl::background_thread::read().unwrap_or(false)
        || tikv_jemalloc_ctl::background_thread::write(true).is_ok();
    if conf == EXPECTED_CONF {
        tracing::debug!(malloc_conf = conf, background, "allocator: jemalloc");
    } else {
        tracing::warn!(
            malloc_conf = conf,
            expected = EXPECTED_CONF,
            background,
            "allocator: jemalloc built without the workspace's settings (.cargo/config.toml); freed memory is returned more slowly"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_build_compiles_in_the_workspace_settings() {
        assert_eq!(super::compiled_conf(), super::EXPECTED_CONF);
        super::tune();
        assert!(tikv_jemalloc_ctl::background_thread::read().expect("readable"));
    }
}
