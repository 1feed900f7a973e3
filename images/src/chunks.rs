//! A blocking reader over chunks another thread or an async task sends: the
//! layer bytes a download receives, the tar stream a decompression thread
//! produces.

use std::io::{self, Read};

use bytes::Bytes;
use tokio::sync::mpsc;

pub(crate) type ChunkSender = mpsc::Sender<io::Result<Bytes>>;

/// A channel `depth` chunks deep: its sending side (`send` from async code,
/// `blocking_send` from a thread) and a [`ChannelReader`] for the other end.
pub(crate) fn channel(depth: usize) -> (ChunkSender, ChannelReader) {
    let (tx, rx) = mpsc::channel(depth);
    (
        tx,
        ChannelReader {
            rx,
            current: Bytes::new(),
        },
    )
}

/// Reads the chunks in order; an error sent is returned once, and the end of
/// the stream is when every sender is gone.
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_arrive_in_order_and_errors_pass_through() {
        let (tx, mut reader) = channel(2);
        let sender = std::thread::spawn(move || {
            for part in [&b"hello "[..], b"", b"world"] {
                tx.blocking_send(Ok(Bytes::copy_from_slice(part))).unwrap();
            }
        });
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        sender.join().unwrap();
        assert_eq!(text, "hello world");

        let (tx, mut reader) = channel(1);
        tx.blocking_send(Err(io::Error::other("cut"))).unwrap();
        drop(tx);
        let mut buf = [0u8; 4];
        assert_eq!(reader.read(&mut buf).unwrap_err().to_string(), "cut");
        assert_eq!(reader.read(&mut buf).unwrap(), 0);
    }
}
