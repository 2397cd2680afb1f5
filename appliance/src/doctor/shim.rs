//! TURN over TCP or TLS for doctor's ICE agents. webrtc-ice 0.17 gathers relay candidates
//! over UDP only (its TURN-over-TCP and TLS paths are not written), so for `ice.tcp` and
//! `ice.tls` each agent's TURN client talks UDP to a shim on loopback, and the shim carries
//! every packet over a TCP or TLS connection of its own to the relay, framed as TURN over a
//! stream is (RFC 8656 §3.1: STUN messages as they are, ChannelData padded to a multiple
//! of 4). To the relay it is a TURN-over-TCP/TLS client like a browser's: the allocation,
//! its permissions and every relayed packet go over that connection, and the allocation
//! ends with it.
//!
//! A shim serves the first local address that sends to it (the agent's TURN client) and
//! ignores every other; it ends when the connection does, or when it is dropped.

use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Largest packet carried (TURN packets fit a UDP datagram).
const MAX_PACKET: usize = 65_535;

pub struct Shim {
    /// Where the TURN client sends: a UDP address on loopback.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Shim {
    /// Serves `stream`, a connection to the relay's TCP or TLS port.
    pub async fn start<S>(stream: S) -> io::Result<Shim>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let udp = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = udp.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = carry(udp, stream).await;
        });
        Ok(Shim { addr, task })
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Carries packets both ways until either side ends.
async fn carry<S: AsyncRead + AsyncWrite>(udp: UdpSocket, stream: S) -> io::Result<()> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let client = OnceLock::new();
    let up = async {
        let mut buf = vec![0u8; MAX_PACKET];
        loop {
            let (n, from) = udp.recv_from(&mut buf).await?;
            if *client.get_or_init(|| from) != from {
                continue;
            }
            writer.write_all(&framed(&buf[..n])).await?;
        }
    };
    let down = async {
        loop {
            let packet = read_frame(&mut reader).await?;
            if let Some(to) = client.get() {
                udp.send_to(&packet, to).await?;
            }
        }
    };
    tokio::select! {
        r = up => r,
        r = down => r,
    }
}

/// A packet as it goes on a stream: ChannelData padded to a multiple of 4 bytes.
fn framed(packet: &[u8]) -> Vec<u8> {
    let mut out = packet.to_vec();
    if packet.first().is_some_and(|b| b >> 6 == 0b01) {
        out.resize(packet.len().div_ceil(4) * 4, 0);
    }
    out
}

/// The next STUN message or ChannelData from a stream, without its padding.
async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    reader.read_exact(&mut header).await?;
    let length = crate::turn::frame_length(&header)?;
    let padded = if header[0] >> 6 == 0b01 { length.div_ceil(4) * 4 } else { length };
    let mut frame = vec![0u8; padded];
    frame[..4].copy_from_slice(&header);
    reader.read_exact(&mut frame[4..]).await?;
    frame.truncate(length);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn packets_cross_both_ways_framed_and_unpadded() {
        let (near, mut far) = tokio::io::duplex(4096);
        let shim = Shim::start(near).await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // A STUN header (type 0x0001, length 0, magic cookie, transaction id) and a
        // ChannelData of 5 bytes, which the stream carries padded to 8.
        let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        stun.extend_from_slice(&[7; 12]);
        let channel = [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5];
        client.send_to(&stun, shim.addr).await.unwrap();
        client.send_to(&channel, shim.addr).await.unwrap();
        let mut wire = vec![0u8; 20 + 12];
        far.read_exact(&mut wire).await.unwrap();
        assert_eq!(&wire[..20], &stun[..]);
        assert_eq!(&wire[20..], &[0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0]);
        // Another local sender is not served.
        let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        stranger.send_to(&stun, shim.addr).await.unwrap();
        far.write_all(&[0x40, 0x01, 0x00, 0x02, 9, 9, 0, 0]).await.unwrap();
        far.write_all(&stun).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], &[0x40, 0x01, 0x00, 0x02, 9, 9]);
        let (n, _) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], &stun[..]);
        let mut nothing = [0u8; 1];
        let more = tokio::time::timeout(std::time::Duration::from_millis(100), far.read(&mut nothing)).await;
        assert!(more.is_err(), "the stranger's packet went to the relay");
    }
}
