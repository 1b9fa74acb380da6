"""Local stand-ins for vendor ticket APIs: real HTTP on loopback, requests checked as each vendor documents."""
