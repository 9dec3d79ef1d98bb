//! Who sent a request: the peer address, or the `X-Forwarded-For` client when the peer is a trusted proxy; and
//! whether that address is allowed. Pure functions over addresses.

use std::net::IpAddr;

use ipnet::IpNet;

/// A set of networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetSet(Vec<IpNet>);

impl NetSet {
    /// A set of the given networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    /// True if any network holds `ip` (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// True when the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Parses `10.0.0.0/8`, `::1/128` or a bare address (a /32 or /128).
pub fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left can be forged by anyone).
pub fn client_ip<'h>(peer: IpAddr, forwarded_for: impl Iterator<Item = &'h str>, trusted: &NetSet) -> IpAddr {
    if trusted.is_empty() || !trusted.contains(peer) {
        return canonical(peer);
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|h| h.split(',')).map(str::trim).collect();
    let mut client = canonical(peer);
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            // An unparsable hop ends the chain we can believe; stop at the last trusted answer.
            break;
        };
        client = canonical(ip);
        if !trusted.contains(ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(cidrs: &[&str]) -> NetSet {
        NetSet::new(cidrs.iter().map(|c| parse_net(c).expect("valid cidr")).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("valid ip")
    }

    #[test]
    fn cidr_and_single_address_matching() {
        let s = set(&["10.0.0.0/8", "54.211.40.75", "2001:db8::/32"]);
        assert!(s.contains(ip("10.1.2.3")));
        assert!(s.contains(ip("54.211.40.75")));
        assert!(!s.contains(ip("54.211.40.76")));
        assert!(s.contains(ip("2001:db8::1")));
        assert!(s.contains(ip("::ffff:10.0.0.1")), "v4-mapped v6 counts as v4");
        assert!(!s.contains(ip("11.0.0.1")));
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let trusted = set(&["127.0.0.1"]);
        let got = client_ip(ip("192.0.2.9"), ["54.211.40.75"].into_iter(), &trusted);
        assert_eq!(got, ip("192.0.2.9"));
        let got = client_ip(ip("192.0.2.9"), ["54.211.40.75"].into_iter(), &NetSet::default());
        assert_eq!(got, ip("192.0.2.9"));
    }

    #[test]
    fn forwarded_for_takes_the_rightmost_untrusted_hop() {
        let trusted = set(&["127.0.0.0/8", "10.0.0.0/8"]);
        // client forged "1.1.1.1"; real client 54.211.40.75 reached proxy 10.0.0.2, then the local proxy.
        let got = client_ip(ip("127.0.0.1"), ["1.1.1.1, 54.211.40.75", "10.0.0.2"].into_iter(), &trusted);
        assert_eq!(got, ip("54.211.40.75"));
        // Only trusted hops: the left-most of them is the best we know.
        let got = client_ip(ip("127.0.0.1"), ["10.0.0.3"].into_iter(), &trusted);
        assert_eq!(got, ip("10.0.0.3"));
        // No header: the peer.
        let got = client_ip(ip("127.0.0.1"), std::iter::empty(), &trusted);
        assert_eq!(got, ip("127.0.0.1"));
    }
}
