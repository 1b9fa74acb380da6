"""Vendor remote sessions from jump hosts and VPN gateways: parsing, records, the syslog listener."""
