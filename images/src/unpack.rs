//! Safe, fast application of one layer tar into a directory, converting
//! AUFS-style whiteouts (`.wh.NAME`, `.wh..wh..opq`) into overlayfs form.

use crate::digest::{sha256_ref, HashReader};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, normalize, BadPath, Meta, OPAQUE_MARKER, WHITEOUT_PREFIX};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Read/write chunk size: large enough that per-call overhead vanishes.
pub(crate) const IO_BUF: usize = 256 * 1024;

/// Compression of a layer (or archive) stream, detected from its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

impl Compression {
    fn detect(head: &[u8]) -> io::Result<Compression> {
        const GZIP: &[u8] = &[0x1f, 0x8b];
        const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
        const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
        const BZIP2: &[u8] = b"BZh";
        if head.starts_with(GZIP) {
            Ok(Compression::Gzip)
        } else if head.starts_with(ZSTD) {
            Ok(Compression::Zstd)
        } else if head.starts_with(XZ) || head.starts_with(BZIP2) {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "xz and bzip2 compression are not supported (only gzip and zstd)",
            ))
        } else {
            Ok(Compression::None)
        }
    }
}

/// What [`unpack_layer`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries applied (whiteouts included).
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub file_bytes: u64,
    /// Length of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// `sha256:<hex>` of the uncompressed tar stream (the layer's diff_id).
    pub diff_id: String,
    pub compression: Compression,
}

type Sniffed<R> = BufReader<io::Chain<io::Cursor<Vec<u8>>, R>>;

/// A decompressing reader chosen by magic bytes.
pub(crate) enum Decoder<R: Read> {
    Plain(Sniffed<R>),
    Gzip(Box<flate2::bufread::MultiGzDecoder<Sniffed<R>>>),
    Zstd(zstd::stream::read::Decoder<'static, Sniffed<R>>),
}

impl<R: Read> Decoder<R> {
    /// Peek at the first bytes of `reader` and wrap it in the matching decoder.
    pub(crate) fn new(mut reader: R) -> io::Result<(Compression, Decoder<R>)> {
        let mut head = Vec::with_capacity(8);
        (&mut reader).take(8).read_to_end(&mut head)?;
        let compression = Compression::detect(&head)?;
        let input = BufReader::with_capacity(IO_BUF, io::Cursor::new(head).chain(reader));
        let decoder = match compression {
            Compression::None => Decoder::Plain(input),
            Compression::Gzip => Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(input))),
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(input)?),
        };
        Ok((compression, decoder))
    }

    /// Read what the decoder left of the input (so a caller hashing the raw
    /// input sees all of it).
    fn drain_input(self) -> io::Result<u64> {
        let mut input = match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish(),
        };
        io::copy(&mut input, &mut io::sink())
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

/// Apply one layer (tar, optionally gzip- or zstd-compressed, detected by
/// magic bytes) into `dest`, which is created if missing.
///
/// Entries are created without ever following a symlink out of `dest`: an
/// entry whose path is absolute, climbs out with `..`, or leads through a
/// symlink pointing outside (laid down earlier in this layer or already in
/// `dest`), and hard links whose target does so, are rejected with
/// [`Error::UnsafeEntry`]. Whiteouts become overlayfs whiteouts (0:0
/// character devices) and opaque markers become `trusted.overlay.opaque=y`.
/// Ownership, modes (setuid included), mtimes, xattrs (where supported),
/// hard links, symlinks, device nodes and fifos are reproduced.
///
/// The whole input is consumed, so a caller hashing `reader` gets the
/// digest of the complete blob.
pub fn unpack_layer(reader: impl Read + Send, dest: &Path) -> Result<UnpackStats> {
    std::fs::create_dir_all(dest).ctx("create directory", dest)?;
    let (compression, decoder) = Decoder::new(reader).map_err(|source| Error::Stream { near: None, source })?;
    let mut unpacker = Unpacker::new(dest)?;
    // Decompression and hashing run on a second thread, one buffer ahead of
    // the file creation here: tar xzf overlaps them the same way (gzip is
    // its own process).
    std::thread::scope(|scope| {
        let (tx, reader) = crate::chunks::channel(4);
        let producer = scope.spawn(move || {
            let mut tar_stream = HashReader::new(decoder);
            loop {
                let mut buf = vec![0u8; IO_BUF];
                match tar_stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.blocking_send(Ok(buf.into())).is_err() {
                            break; // the unpacker stopped reading
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        break;
                    }
                }
            }
            tar_stream
        });
        let outcome = {
            let mut buffered = BufReader::with_capacity(IO_BUF, reader);
            match unpacker.run(&mut buffered) {
                outcome @ (Ok(()) | Err(Error::Stream { .. })) => {
                    // Hash what follows the end-of-archive marker too: a diff_id
                    // covers the whole stream.
                    io::copy(&mut buffered, &mut io::sink()).map_err(|e| unpacker.stream_error(e))?;
                    outcome
                }
                Err(e) => return Err(e),
            }
        };
        let tar_stream = producer.join().map_err(|_| Error::Stream {
            near: None,
            source: io::Error::other("the decompression thread panicked"),
        })?;
        match outcome {
            // Some writers (umoci 0.4) end the stream right after the last file's
            // data, without padding or end-of-archive marker. Go's archive/tar
            // (docker, containerd) takes that as the end; so do we. A stream cut
            // anywhere else is still an error.
            Err(Error::Stream { .. }) if unpacker.data_end > 0 && tar_stream.len() == unpacker.data_end => {
                tracing::debug!(dest = %dest.display(), "layer tar ends without padding or end-of-archive marker");
            }
            other => other?,
        }
        unpacker.finish()?;
        let tar_bytes = tar_stream.len();
        let (diff_id, decoder) = tar_stream.finish();
        decoder.drain_input().map_err(|e| unpacker.stream_error(e))?;
        Ok(UnpackStats {
            entries: unpacker.entries,
            file_bytes: unpacker.file_bytes,
            tar_bytes,
            diff_id: sha256_ref(&diff_id),
            compression,
        })
    })
}

fn split_parent(rel: &Path) -> (&Path, &OsStr) {
    (
        rel.parent().unwrap_or(Path::new("")),
        rel.file_name().unwrap_or_default(),
    )
}

fn is_escape(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(c) if c == Errno::XDEV.raw_os_error() || c == Errno::LOOP.raw_os_error())
}

/// Retry `op` once after removing whatever is at `name` when it fails with EEXIST.
fn replacing<T>(
    cache: &mut Option<(PathBuf, Rc<OwnedFd>)>,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    mut op: impl FnMut() -> rustix::io::Result<T>,
) -> io::Result<T> {
    match op() {
        Err(Errno::EXIST) => {
            // Removing may delete a directory we hold open: forget cached fds.
            *cache = None;
            fsutil::remove_entry(dir, name)?;
            Ok(op()?)
        }
        other => Ok(other?),
    }
}

struct Unpacker {
    root: OwnedFd,
    /// The last directory looked up (entries come grouped by directory).
    cache: Option<(PathBuf, Rc<OwnedFd>)>,
    /// Directory times, applied last so creating children does not change them.
    dir_times: Vec<(PathBuf, Timestamps)>,
    buf: Vec<u8>,
    /// Path of the entry being (or last) processed, for error messages.
    current: Option<PathBuf>,
    entries: u64,
    file_bytes: u64,
    /// Stream offset where the last entry's data ends.
    data_end: u64,
}

impl Unpacker {
    fn new(dest: &Path) -> Result<Unpacker> {
        Ok(Unpacker {
            root: fsutil::open_dir(dest).ctx("open directory", dest)?,
            cache: None,
            dir_times: Vec::new(),
            buf: vec![0; IO_BUF],
            current: None,
            entries: 0,
            file_bytes: 0,
            data_end: 0,
        })
    }

    fn stream_error(&self, source: io::Error) -> Error {
        Error::Stream {
            near: self.current.clone(),
            source,
        }
    }

    fn run(&mut self, input: impl Read) -> Result<()> {
        let mut archive = tar::Archive::new(input);
        let entries = archive.entries().map_err(|e| self.stream_error(e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.stream_error(e))?;
            self.data_end = entry.raw_file_position() + entry.size();
            let shown = PathBuf::from(OsStr::from_bytes(&entry.path_bytes()));
            self.current = Some(shown.clone());
            self.entry(&mut entry, &shown)?;
            self.entries += 1;
        }
        Ok(())
    }

    /// Open directory `rel` below the root, creating missing directories
    /// (0755, like tar) when `create`.
    fn dir(&mut self, rel: &Path, create: bool) -> io::Result<Rc<OwnedFd>> {
        if let Some((cached, fd)) = &self.cache {
            if cached == rel {
                return Ok(fd.clone());
            }
        }
        let fd = match fsutil::open_dir_beneath(self.root.as_fd(), rel) {
            Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                let (parent, name) = split_parent(rel);
                let parent = self.dir(parent, true)?;
                match rfs::mkdirat(&*parent, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                fsutil::open_dir_beneath(self.root.as_fd(), rel)?
            }
            other => other?,
        };
        let fd = Rc::new(fd);
        self.cache = Some((rel.to_path_buf(), fd.clone()));
        Ok(fd)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, shown: &Path) -> Result<()> {
        use tar::EntryType as T;
        let unsafe_entry = |reason| Error::UnsafeEntry {
            entry: shown.to_path_buf(),
            reason,
        };
        let io_err = |source: io::Error| Error::Entry {
            entry: shown.to_path_buf(),
            source,
        };
        let resolve_err = |e: io::Error| {
            if is_escape(&e) {
                unsafe_entry("its path leads outside the layer directory through a symlink")
            } else {
                io_err(e)
            }
        };
        let kind = entry.header().entry_type();
        if matches!(kind, T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink) {
            return Ok(());
        }
        let rel = normalize(&entry.path_bytes()).map_err(|bad| match bad {
            BadPath::Absolute => unsafe_entry("absolute path"),
            BadPath::DotDot => unsafe_entry("its path leads outside the layer directory through '..'"),
        })?;
        let (parent_rel, name) = split_parent(&rel);
        let name_bytes = name.as_bytes();

        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            let parent = self.dir(parent_rel, true).map_err(resolve_err)?;
            if name_bytes == OPAQUE_MARKER.as_bytes() {
                let dir = rfs::openat(
                    &*parent,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io_err(e.into()))?;
                return fsutil::set_opaque(dir.as_fd()).map_err(io_err);
            }
            if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) || hidden.is_empty() {
                tracing::debug!(entry = %shown.display(), "skipping AUFS metadata entry");
                return Ok(());
            }
            // `.wh..` and `.wh...` would hide the directory itself or its
            // parent: no image means that, and replacing "." would empty it
            if hidden == b"." || hidden == b".." {
                return Err(unsafe_entry("a whiteout of '.' or '..' names no file"));
            }
            let hidden = OsStr::from_bytes(hidden);
            return replacing(&mut self.cache, parent.as_fd(), hidden, || {
                fsutil::make_whiteout(parent.as_fd(), hidden)
            })
            .map_err(io_err);
        }

        let meta = header_meta(entry).map_err(io_err)?;
        if rel.as_os_str().is_empty() {
            // The layer root itself ("./").
            if kind == T::Directory {
                meta.apply_fd(self.root.as_fd()).map_err(io_err)?;
                self.dir_times.push((rel, meta.timestamps()));
            }
            return Ok(());
        }
        let parent = self.dir(parent_rel, true).map_err(resolve_err)?;
        let parent = parent.as_fd();
        match kind {
            T::Directory => {
                // A directory replacing a whiteout of this layer (`.wh.d`, then
                // `d/`) hides the lower `d` entirely: it must be opaque.
                let mut over_whiteout = false;
                match rfs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        let st = fsutil::stat_at(parent, name).map_err(io_err)?;
                        if st.is_none_or(|st| fsutil::file_type(&st) != FileType::Directory) {
                            over_whiteout = st.is_some_and(|st| fsutil::is_whiteout(&st));
                            replacing(&mut self.cache, parent, name, || {
                                rfs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                            })
                            .map_err(io_err)?;
                        }
                    }
                    Err(e) => return Err(io_err(e.into())),
                }
                let dir = fsutil::open_subdir(parent, name).map_err(io_err)?;
                if over_whiteout {
                    fsutil::set_opaque(dir.as_fd()).map_err(io_err)?;
                }
                meta.apply_fd(dir.as_fd()).map_err(io_err)?;
                self.dir_times.push((rel, meta.timestamps()));
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                let fd = replacing(&mut self.cache, parent, name, || {
                    rfs::openat(
                        parent,
                        name,
                        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o600),
                    )
                })
                .map_err(io_err)?;
                let mut file = File::from(fd);
                let expected = entry.size();
                let mut written = 0u64;
                loop {
                    let n = match entry.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(self.stream_error(e)),
                    };
                    file.write_all(&self.buf[..n]).map_err(io_err)?;
                    written += n as u64;
                }
                if kind != T::GNUSparse && written != expected {
                    return Err(self.stream_error(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("truncated: entry has {written} of {expected} bytes"),
                    )));
                }
                self.file_bytes += written;
                meta.apply_fd(file.as_fd()).map_err(io_err)?;
                rfs::futimens(&file, &meta.timestamps()).map_err(|e| io_err(e.into()))?;
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| io_err(invalid("symlink without a target")))?;
                replacing(&mut self.cache, parent, name, || {
                    rfs::symlinkat(OsStr::from_bytes(&target), parent, name)
                })
                .map_err(io_err)?;
                meta.apply_at(parent, name).map_err(io_err)?;
            }
            T::Link => {
                let raw_target = entry
                    .link_name_bytes()
                    .ok_or_else(|| io_err(invalid("hard link without a target")))?;
                let target = normalize(&raw_target).map_err(|bad| match bad {
                    BadPath::Absolute => unsafe_entry("hard link target is an absolute path"),
                    BadPath::DotDot => unsafe_entry("hard link target leads outside the layer directory through '..'"),
                })?;
                if target.as_os_str().is_empty() {
                    return Err(unsafe_entry("hard link to the layer directory itself"));
                }
                let (target_parent, target_name) = split_parent(&target);
                let target_dir = self.dir(target_parent, false).map_err(|e| {
                    if is_escape(&e) {
                        unsafe_entry("hard link target leads outside the layer directory through a symlink")
                    } else {
                        io_err(e)
                    }
                })?;
                replacing(&mut self.cache, parent, name, || {
                    // No AT_SYMLINK_FOLLOW: a symlink target is linked, not followed.
                    rfs::linkat(&*target_dir, target_name, parent, name, AtFlags::empty())
                })
                .map_err(io_err)?;
            }
            T::Char | T::Block | T::Fifo => {
                let (file_type, dev) = match kind {
                    T::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let h = entry.header();
                        let major = h.device_major().map_err(io_err)?.unwrap_or(0);
                        let minor = h.device_minor().map_err(io_err)?.unwrap_or(0);
                        let ft = if kind == T::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rfs::makedev(major, minor))
                    }
                };
                replacing(&mut self.cache, parent, name, || {
                    rfs::mknodat(parent, name, file_type, Mode::from_raw_mode(0o600), dev)
                })
                .map_err(io_err)?;
                meta.apply_at(parent, name).map_err(io_err)?;
            }
            other => {
                tracing::warn!(entry = %shown.display(), kind = ?other, "skipping unsupported tar entry type");
            }
        }
        Ok(())
    }

    /// Set directory times, deepest first, now that their contents are written.
    fn finish(&mut self) -> Result<()> {
        let dir_times = std::mem::take(&mut self.dir_times);
        for (rel, times) in dir_times.iter().rev() {
            let (parent_rel, name) = split_parent(rel);
            let entry_err = |source| Error::Entry {
                entry: rel.clone(),
                source,
            };
            if rel.as_os_str().is_empty() {
                // the layer root ("./"): through our own descriptor of it
                // (the ones `dir` opens are O_PATH, where futimens fails)
                fsutil::set_times_at(self.root.as_fd(), name, times).map_err(entry_err)?;
                continue;
            }
            let parent = match self.dir(parent_rel, false) {
                Ok(p) => p,
                // Replaced or removed by a later entry.
                Err(e) if e.kind() == io::ErrorKind::NotFound || is_escape(&e) => continue,
                Err(e) => return Err(entry_err(e)),
            };
            match fsutil::set_times_at(parent.as_fd(), name, times) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other.map_err(entry_err)?,
            }
        }
        Ok(())
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Ownership, mode, times and xattrs of a tar entry (PAX values win).
fn header_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let h = entry.header();
    let id = |v: u64| u32::try_from(v).map_err(|_| invalid("uid/gid out of range"));
    let uid = id(h.uid()?)?;
    let gid = id(h.gid()?)?;
    let mode = h.mode()? & 0o7777;
    let mut mtime = Timespec {
        tv_sec: h.mtime()? as i64,
        tv_nsec: 0,
    };
    let mut xattrs = Vec::new();
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let key = ext.key_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
            } else if key == b"mtime" {
                if let Some(t) = parse_pax_time(ext.value_bytes()) {
                    mtime = t;
                }
            }
        }
    }
    Ok(Meta {
        uid,
        gid,
        mode,
        atime: mtime,
        mtime,
        xattrs,
    })
}

/// PAX times: `seconds[.fraction]`.
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(value).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec = secs.parse::<i64>().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let tv_nsec = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32)
    };
    Some(Timespec {
        tv_sec,
        tv_nsec: tv_nsec as _,
    })
}

#[cfg(test)]
mod tests;
