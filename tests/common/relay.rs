//! A TCP relay between a source and its destination, for the tests that meddle with the link:
//! it takes one connection, connects on to the destination, and lets a closure per direction
//! say what happens to that direction's bytes (pass them, alter them, record them, cut them).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;

/// Listen on a free local port; for the first connection, connect to `to` and run `forward`
/// (source -> destination) and `back` (destination -> source), each given the stream to read
/// and the stream to write. Once `forward` returns, the destination's write side is shut, as
/// the source's close would. The handle yields both closures' results once both are done.
pub fn start<F, B, T, U>(to: SocketAddr, forward: F, back: B) -> (SocketAddr, JoinHandle<(T, U)>)
where
    F: FnOnce(&mut TcpStream, &mut TcpStream) -> T + Send + 'static,
    B: FnOnce(&mut TcpStream, &mut TcpStream) -> U + Send + 'static,
    T: Send + 'static,
    U: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut src, _) = listener.accept().unwrap();
        let mut dst = TcpStream::connect(to).unwrap();
        let (mut src2, mut dst2) = (src.try_clone().unwrap(), dst.try_clone().unwrap());
        let back = std::thread::spawn(move || back(&mut dst2, &mut src2));
        let forwarded = forward(&mut src, &mut dst);
        let _ = dst.shutdown(std::net::Shutdown::Write);
        (forwarded, back.join().unwrap())
    });
    (addr, h)
}

/// Pass every byte unchanged until either side closes.
pub fn pass(from: &mut TcpStream, to: &mut TcpStream) {
    let _ = std::io::copy(from, to);
}

/// Pass the bytes read, as they come, through `keep`: it sees each read and says how much of
/// it to deliver (what it holds back is dropped), until either side closes.
pub fn filter(from: &mut TcpStream, to: &mut TcpStream, mut keep: impl FnMut(&[u8]) -> usize) {
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        let pass = keep(&buf[..n]).min(n);
        if pass > 0 && to.write_all(&buf[..pass]).is_err() {
            break;
        }
    }
}
