//! Idle mode: many gateway sockets of one device, opened and held open
//! without traffic, for the server's memory per idle gateway.

use super::args::Args;
use super::client;
use super::Error;

/// Opens `n` gateway sockets for one new device and holds them for
/// `--duration-secs`.
pub fn hold(args: &Args, n: usize) -> Result<(), Error> {
    let one = Args {
        users: 1,
        setup_threads: 1,
        ..args.clone()
    };
    let device = client::register_devices(&one)?.pop().ok_or("no device")?;
    let mut http = client::Http::connect(args.target)?;
    let sockets = (0..n)
        .map(|_| client::open_gateway(&mut http, &device.token, Some(args.source_ip)))
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "holding {} idle gateway sockets from {} for {} s",
        sockets.len(),
        args.source_ip,
        args.duration_secs
    );
    std::thread::sleep(args.duration());
    drop(sockets);
    Ok(())
}
