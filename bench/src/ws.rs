//! Pusher WebSocket client pieces: connect (from a chosen loopback source address, so more than
//! one address's worth of ephemeral ports can be used), read `connection_established`, subscribe.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::Target;

pub type Ws = WebSocketStream<TcpStream>;

/// Connections opened per loopback source address before moving to the next one
/// (the ephemeral port range holds about 28k ports per address pair).
const PER_SOURCE: usize = 20_000;

fn client_config() -> WebSocketConfig {
    // Small buffers: the tool may hold tens of thousands of sockets.
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Opens connection number `index`, waits for `pusher:connection_established`, returns the socket
/// and its `socket_id`.
pub async fn connect(t: &Target, index: usize) -> Result<(Ws, String)> {
    let addr: SocketAddr = format!("{}:{}", t.host, t.port)
        .parse()
        .with_context(|| format!("host must be an IP address, got {}", t.host))?;
    let socket = TcpSocket::new_v4()?;
    let n = index / PER_SOURCE;
    if addr.ip().is_loopback() && n > 0 {
        // Past the first address's worth of ports, connect from 127.0.0.2, 127.0.0.3, …; the
        // port is still chosen at connect time (IP_BIND_ADDRESS_NO_PORT), per 4-tuple, so
        // sockets in TIME_WAIT from earlier runs do not exhaust the range.
        let one: libc::c_int = 1;
        // SAFETY: setsockopt on a socket we own, with a valid pointer and length.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                std::ptr::addr_of!(one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        socket.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, 1 + n as u8), 0)))?;
    }
    let stream = socket.connect(addr).await.context("TCP connect")?;
    stream.set_nodelay(true)?;
    let url = format!(
        "ws://{}:{}/app/{}?protocol=7&client=chorus-bench&version=0.1",
        t.host, t.port, t.key
    );
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(client_config()))
            .await
            .context("WebSocket handshake")?;
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .map_err(|_| anyhow!("no connection_established within 10 s"))?;
    let text = match first {
        Some(Ok(Message::Text(t))) => t,
        other => bail!("expected connection_established, got {other:?}"),
    };
    let socket_id = socket_id_of(text.as_str())?;
    Ok((ws, socket_id))
}

fn socket_id_of(frame: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(frame)?;
    if v["event"] != "pusher:connection_established" {
        bail!("expected connection_established, got {frame}");
    }
    let data = &v["data"];
    let data: serde_json::Value = match data {
        serde_json::Value::String(s) => serde_json::from_str(s)?,
        other => other.clone(),
    };
    data["socket_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no socket_id in {frame}"))
}

/// Sends `pusher:subscribe`; private and presence channels are signed here, as a backend would.
pub async fn subscribe(
    ws: &mut Ws,
    t: &Target,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> Result<()> {
    let mut data = serde_json::json!({ "channel": channel });
    if channel.starts_with("private-") || channel.starts_with("presence-") {
        data["auth"] = chorus_protocol::sign::sign_channel(
            &t.key,
            &t.secret,
            socket_id,
            channel,
            channel_data,
        )
        .into();
    }
    if let Some(cd) = channel_data {
        data["channel_data"] = cd.into();
    }
    let msg = serde_json::json!({ "event": "pusher:subscribe", "data": data });
    ws.send(Message::text(msg.to_string())).await?;
    Ok(())
}

pub async fn unsubscribe(ws: &mut Ws, channel: &str) -> Result<()> {
    let msg = serde_json::json!({ "event": "pusher:unsubscribe", "data": { "channel": channel } });
    ws.send(Message::text(msg.to_string())).await?;
    Ok(())
}

pub fn pong() -> Message {
    Message::text(r#"{"event":"pusher:pong","data":{}}"#)
}

/// Whether a frame is the server's `pusher:ping` (cheap check, no JSON parse).
pub fn is_ping(frame: &[u8]) -> bool {
    memchr::memmem::find(frame, b"\"pusher:ping\"").is_some()
}

/// Waits for `subscription_succeeded` on `channel` (answering pings); returns the frame.
pub async fn wait_succeeded(ws: &mut Ws, channel: &str, within: Duration) -> Result<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| anyhow!("no subscription_succeeded for {channel} in {within:?}"))?;
        match msg {
            Some(Ok(Message::Text(text))) => {
                let s = text.as_str();
                if s.contains("pusher_internal:subscription_succeeded") && s.contains(channel) {
                    return Ok(s.to_owned());
                }
                if s.contains("pusher:subscription_error") || s.contains("\"pusher:error\"") {
                    bail!("subscribing to {channel}: {s}");
                }
                if is_ping(s.as_bytes()) {
                    ws.send(pong()).await?;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("socket error while subscribing: {e}"),
            None => bail!("socket closed while subscribing to {channel}"),
        }
    }
}
