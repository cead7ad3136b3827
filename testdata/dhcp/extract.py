#!/usr/bin/env python3
"""List or extract the DHCP messages in classic pcap captures.

    extract.py list CAPTURE...              one line per DHCP frame: frame, ports, type, summary
    extract.py extract CAPTURE FRAME OUT    write that frame's UDP payload (the DHCP message) to OUT

Parses pcap, Ethernet (with 802.1Q tags), IPv4 and UDP by hand: no scapy. Frame numbers
count from 1, as Wireshark and tcpdump do.
"""
import struct
import sys


def frames(path):
    """Yields (frame_number, link_type, bytes) for each record of a classic pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap file")
    link_type = struct.unpack(endian + "I", data[20:24])[0]
    pos, number = 24, 0
    while pos + 16 <= len(data):
        _, _, incl_len, _ = struct.unpack(endian + "IIII", data[pos:pos + 16])
        pos += 16
        number += 1
        yield number, link_type, data[pos:pos + incl_len]
        pos += incl_len


def udp_payload(link_type, frame):
    """Returns (src_ip, dst_ip, src_port, dst_port, payload) for IPv4/UDP, else None."""
    if link_type == 1:  # Ethernet
        offset, ethertype = 14, struct.unpack("!H", frame[12:14])[0]
        while ethertype == 0x8100:
            ethertype = struct.unpack("!H", frame[offset + 2:offset + 4])[0]
            offset += 4
        if ethertype != 0x0800:
            return None
    elif link_type == 113:  # Linux cooked capture
        offset = 16
        if struct.unpack("!H", frame[14:16])[0] != 0x0800:
            return None
    else:
        raise SystemExit(f"unsupported link type {link_type}")
    ip = frame[offset:]
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    udp = ip[ihl:total]
    src_port, dst_port, udp_len = struct.unpack("!HHH", udp[:6])
    src = ".".join(map(str, ip[12:16]))
    dst = ".".join(map(str, ip[16:20]))
    return src, dst, src_port, dst_port, udp[8:udp_len]


def options(payload):
    """The options of a DHCP message as (code, data) pairs (options field only)."""
    out, pos = [], 240
    while pos < len(payload):
        code = payload[pos]
        if code == 0:
            pos += 1
            continue
        if code == 255:
            break
        length = payload[pos + 1]
        out.append((code, payload[pos + 2:pos + 2 + length]))
        pos += 2 + length
    return out


TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}


def summary(payload):
    opts = dict(options(payload))
    kind = TYPES.get(opts.get(53, b"\0")[0], "BOOTP")
    flags = struct.unpack("!H", payload[10:12])[0]
    mac = ":".join(f"{b:02x}" for b in payload[28:34])
    xid = struct.unpack("!I", payload[4:8])[0]
    order = " ".join(str(c) for c, _ in options(payload))
    vendor = opts.get(60, b"").decode("ascii", "replace")
    user = opts.get(77, b"").decode("ascii", "replace")
    return f"{kind:8} xid={xid:08x} flags={flags:04x} chaddr={mac} 60={vendor!r} 77={user!r} options=[{order}]"


def main(argv):
    if len(argv) >= 2 and argv[0] == "list":
        for path in argv[1:]:
            for number, link_type, frame in frames(path):
                udp = udp_payload(link_type, frame)
                if udp and {udp[2], udp[3]} & {67, 68, 4011}:
                    src, dst, sport, dport, payload = udp
                    print(f"{path}:{number} {src}:{sport} > {dst}:{dport} len={len(payload)} {summary(payload)}")
    elif len(argv) == 4 and argv[0] == "extract":
        path, wanted, out = argv[1], int(argv[2]), argv[3]
        for number, link_type, frame in frames(path):
            if number == wanted:
                udp = udp_payload(link_type, frame)
                if not udp:
                    raise SystemExit(f"{path}:{wanted} is not IPv4/UDP")
                with open(out, "wb") as f:
                    f.write(udp[4])
                return
        raise SystemExit(f"{path} has no frame {wanted}")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
