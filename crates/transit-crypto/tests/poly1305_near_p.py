# Makes the vectors of poly1305_near_p.txt and checks the RFC 8439 A.3 vectors with Python's big
# integers: python3 poly1305_near_p.py > body.txt
P = (1 << 130) - 5
def poly(key, msg):
    r = int.from_bytes(key[:16], 'little') & 0x0ffffffc0ffffffc0ffffffc0fffffff
    s = int.from_bytes(key[16:], 'little')
    h = 0
    for i in range(0, len(msg), 16):
        b = msg[i:i+16] + b'\x01'
        h = (h + int.from_bytes(b, 'little')) * r % P
    return ((h + s) % (1 << 128)).to_bytes(16, 'little')
H = bytes.fromhex
ietf = (b"Any submission to the IETF intended by the Contributor for publication as all or part of an IETF "
 b"Internet-Draft or RFC and any statement made within the context of an IETF activity is considered "
 b"an \"IETF Contribution\". Such statements include oral statements in IETF sessions, as well as "
 b"written and electronic communications made at any time or place, which are addressed to")
jab = (b"'Twas brillig, and the slithy toves\nDid gyre and gimble in the wabe:\nAll mimsy were the borogoves,\n"
       b"And the mome raths outgrabe.")
vec = [
 (bytes(32), bytes(64), "00000000000000000000000000000000"),
 (bytes(16)+H("36e5f6b5c5e06070f0efca96227a863e"), ietf, "36e5f6b5c5e06070f0efca96227a863e"),
 (H("36e5f6b5c5e06070f0efca96227a863e")+bytes(16), ietf, "f3477e7cd95417af89a6b8794c310cf0"),
 (H("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0"), jab, "4541669a7eaaee61e708dc7cbcc5eb62"),
 (H("02")+bytes(31), H("ff"*16), "03000000000000000000000000000000"),
 (H("02")+bytes(15)+H("ff"*16), H("02")+bytes(15), "03000000000000000000000000000000"),
 (H("01")+bytes(31), H("ff"*16+"f0"+"ff"*15+"11"+"00"*15), "05000000000000000000000000000000"),
 (H("01")+bytes(31), H("ff"*16+"fb"+"fe"*15+"01"*16), "00000000000000000000000000000000"),
 (H("02")+bytes(31), H("fd"+"ff"*15), "faffffffffffffffffffffffffffffff"),
 (H("01000000000000000400000000000000")+bytes(16), H("e33594d7505e43b900000000000000003394d7505e4379cd01000000000000000000000000000000000000000000000001000000000000000000000000000000"), "14000000000000005500000000000000"),
 (H("01000000000000000400000000000000")+bytes(16), H("e33594d7505e43b900000000000000003394d7505e4379cd010000000000000000000000000000000000000000000000"), "13000000000000000000000000000000"),
]
for i,(k,m,t) in enumerate(vec):
    assert poly(k, m).hex() == t, i + 1

import random
rng = random.Random(8439)
def solve(key, msg, j):
    """Replace full block j of msg so that the final h == target mod p; return block or None."""
    pass
def hval(r, msg, start_h=0, lo=0, hi=None):
    h = start_h
    hi = len(msg) if hi is None else hi
    for i in range(lo, hi, 16):
        b = msg[i:min(i+16, hi)] + b'\x01'
        h = (h + int.from_bytes(b, 'little')) * r % P
    return h
out = []
lens = [16, 17, 31, 32, 63, 64, 127, 128, 129, 255, 256, 257, 383, 384, 1024, 1039, 2048, 4100, 16384]
targets = [0, 1, 2, 3, 4, P-1, P-2, (1<<128)-1, 1<<128, (1<<128)+4]
idx = 0
for L in lens:
    for t in targets:
        full = L // 16
        j = full - 1 if idx % 2 == 0 else 0
        tries = 0
        while True:
            tries += 1
            if tries > 400: break
            seed = rng.randrange(256)
            k = bytearray(rng.randbytes(32))
            if idx % 3 == 0: k[16:] = b'\xff'*16
            elif idx % 3 == 1: k[16:] = bytes(16)
            r = int.from_bytes(k[:16], 'little') & 0x0ffffffc0ffffffc0ffffffc0fffffff
            if r == 0: continue
            msg = bytearray(((i*31 + seed) & 0xff) for i in range(L))
            # h before block j, then solve: h_after_j * r^(nblocks after j) + tail contribution == t
            hb = hval(r, bytes(msg), 0, 0, 16*j)
            # contribution of the blocks after j, as a function h_after -> h_final is affine: a*h + c
            c = hval(r, bytes(msg), 0, 16*(j+1), L)
            nafter = (L - 16*(j+1) + 15)//16
            a = pow(r, nafter, P)
            # h_final = a*h_j + c, h_j = (hb + m + 2^128) * r
            hj = (t - c) * pow(a, -1, P) % P
            m = (hj * pow(r, -1, P) - hb - (1<<128)) % P
            if m < (1 << 128):
                break
        if tries > 400: continue
        msg[16*j:16*j+16] = m.to_bytes(16, 'little')
        msg = bytes(msg)
        assert hval(r, msg) == t % P
        tag = poly(bytes(k), msg)
        out.append((bytes(k).hex(), L, seed, j, m.to_bytes(16,'little').hex(), tag.hex()))
        idx += 1
# The body of poly1305_near_p.txt (its comment header is written by hand).
for o in out:
    print("%s %d %d %d %s %s" % o)
