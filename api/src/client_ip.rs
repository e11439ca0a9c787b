//! Who the client is, for the per-address rate limit: the TCP peer, unless the peer is a
//! configured trusted proxy (`STAMPEDE_TRUSTED_PROXIES`), in which case the
//! `X-Forwarded-For` chain is walked from the right, past every trusted hop, to the
//! first address that is not one. Addresses a client writes into the header itself sit
//! to the left of what its first proxy appended, so they are never reached while that
//! proxy is trusted and the client is not.

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and networks (`10.0.0.0/8, 127.0.0.1`).
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("STAMPEDE_TRUSTED_PROXIES: {s:?} is not an address or network")
                    })
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is one of the trusted proxies (whose `X-Forwarded-For` is believed).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address, from the peer and its `X-Forwarded-For` header.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let mut client = peer;
        let Some(chain) = forwarded_for else {
            return client;
        };
        for hop in chain.rsplit(',') {
            if !self.trusts(client) {
                break;
            }
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => client = ip,
                // A garbled entry: nothing left of it can be believed.
                Err(_) => break,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_header_counts_only_behind_trusted_proxies() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.5"), Some("203.0.113.9")),
            ip("10.0.0.5")
        );

        let lb = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").expect("parses");
        assert_eq!(
            lb.client(ip("10.0.0.5"), Some("203.0.113.9")),
            ip("203.0.113.9")
        );
        assert_eq!(lb.client(ip("10.0.0.5"), None), ip("10.0.0.5"));
        // Two trusted hops, then the client; what the client wrote itself is ignored.
        assert_eq!(
            lb.client(ip("10.0.0.5"), Some("1.2.3.4, 203.0.113.9, 10.1.1.1")),
            ip("203.0.113.9")
        );
        // A peer that is not a trusted proxy cannot claim another address.
        assert_eq!(
            lb.client(ip("198.51.100.7"), Some("203.0.113.9")),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(lb.client(ip("10.0.0.5"), Some("not-an-ip")), ip("10.0.0.5"));
        assert_eq!(
            lb.client(ip("::1"), Some("203.0.113.9")),
            ip("::1"),
            "only the configured addresses"
        );
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(TrustedProxies::parse("")
            .expect("empty is fine")
            .0
            .is_empty());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.internal").is_err());
    }
}
