//! MILENAGE (3GPP TS 35.206) and the AKA challenge–response built on it (TS 33.102 §6.3).
//!
//! The kernel is AES-128 (TS 35.206 §3, the `aes` crate). [`Milenage`] computes f1, f1*, f2,
//! f3, f4, f5 and f5* (TS 35.206 §4.1). On top of it:
//! - [`AuthVector::generate`]: the network side (here the IdMS) builds RAND, XRES and
//!   AUTN = SQN ⊕ AK ‖ AMF ‖ MAC-A (TS 33.102 §6.3.2);
//! - [`Usim`]: the client side checks MAC-A and the freshness of SQN, then answers RES, or a
//!   synchronisation failure with AUTS = SQN_MS ⊕ AK* ‖ MAC-S (TS 33.102 §6.3.3, §6.3.5);
//! - [`Milenage::resynchronise`]: the network side recovers SQN_MS from AUTS.

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit};

/// Length of RAND in bytes.
pub const RAND_LEN: usize = 16;
/// Length of AUTN in bytes.
pub const AUTN_LEN: usize = 16;
/// Length of AUTS in bytes.
pub const AUTS_LEN: usize = 14;
/// Largest sequence number (48 bits).
pub const MAX_SQN: u64 = (1 << 48) - 1;

/// The MILENAGE algorithm set for one subscriber key K and operator variant OPc.
#[derive(Clone)]
pub struct Milenage {
    cipher: Aes128,
    opc: [u8; 16],
}

impl std::fmt::Debug for Milenage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Milenage { .. }")
    }
}

fn xor16(a: &[u8; 16], b: &[u8; 16]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

/// Cyclic rotation left by `bytes` bytes (TS 35.206 §4.1: r1..r5 are multiples of 8 bits).
fn rot(x: &[u8; 16], bytes: usize) -> [u8; 16] {
    let mut out = *x;
    out.rotate_left(bytes % 16);
    out
}

fn sqn_bytes(sqn: u64) -> [u8; 6] {
    let b = (sqn & MAX_SQN).to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn sqn_value(b: [u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

/// The outputs of f2, f3, f4 and f5 for one RAND.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct F2345 {
    /// f2: RES (64 bits).
    pub res: [u8; 8],
    /// f3: the cipher key CK.
    pub ck: [u8; 16],
    /// f4: the integrity key IK.
    pub ik: [u8; 16],
    /// f5: the anonymity key AK.
    pub ak: [u8; 6],
}

impl Milenage {
    /// Creates the algorithm set from K and OPc.
    #[must_use]
    pub fn new(k: [u8; 16], opc: [u8; 16]) -> Self {
        Self {
            cipher: Aes128::new(&k.into()),
            opc,
        }
    }

    /// Creates the algorithm set from K and OP, deriving OPc = OP ⊕ E_K(OP) (TS 35.206 §4.1).
    #[must_use]
    pub fn with_op(k: [u8; 16], op: [u8; 16]) -> Self {
        let cipher = Aes128::new(&k.into());
        let opc = xor16(&encrypt(&cipher, op), &op);
        Self { cipher, opc }
    }

    /// The operator variant OPc in use.
    #[must_use]
    pub fn opc(&self) -> [u8; 16] {
        self.opc
    }

    fn e(&self, block: [u8; 16]) -> [u8; 16] {
        encrypt(&self.cipher, block)
    }

    fn temp(&self, rand: &[u8; 16]) -> [u8; 16] {
        self.e(xor16(rand, &self.opc))
    }

    /// OUT1 of TS 35.206 §4.1 (r1 = 64, c1 = 0).
    fn out1(&self, rand: &[u8; 16], sqn: [u8; 6], amf: [u8; 2]) -> [u8; 16] {
        let temp = self.temp(rand);
        let mut in1 = [0u8; 16];
        in1[0..6].copy_from_slice(&sqn);
        in1[6..8].copy_from_slice(&amf);
        in1[8..14].copy_from_slice(&sqn);
        in1[14..16].copy_from_slice(&amf);
        let rotated = rot(&xor16(&in1, &self.opc), 8);
        xor16(&self.e(xor16(&temp, &rotated)), &self.opc)
    }

    /// OUT2..OUT5 of TS 35.206 §4.1: rotation in bytes and the last byte of the constant c.
    fn out_n(&self, temp: &[u8; 16], rotate: usize, c_last: u8) -> [u8; 16] {
        let mut block = rot(&xor16(temp, &self.opc), rotate);
        block[15] ^= c_last;
        xor16(&self.e(block), &self.opc)
    }

    /// f1: the network authentication code MAC-A.
    #[must_use]
    pub fn f1(&self, rand: &[u8; 16], sqn: [u8; 6], amf: [u8; 2]) -> [u8; 8] {
        let out = self.out1(rand, sqn, amf);
        [
            out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7],
        ]
    }

    /// f1*: the resynchronisation authentication code MAC-S.
    #[must_use]
    pub fn f1_star(&self, rand: &[u8; 16], sqn: [u8; 6], amf: [u8; 2]) -> [u8; 8] {
        let out = self.out1(rand, sqn, amf);
        [
            out[8], out[9], out[10], out[11], out[12], out[13], out[14], out[15],
        ]
    }

    /// f2 (RES), f3 (CK), f4 (IK) and f5 (AK).
    #[must_use]
    pub fn f2345(&self, rand: &[u8; 16]) -> F2345 {
        let temp = self.temp(rand);
        let out2 = self.out_n(&temp, 0, 1);
        let out3 = self.out_n(&temp, 4, 2);
        let out4 = self.out_n(&temp, 8, 4);
        F2345 {
            res: [
                out2[8], out2[9], out2[10], out2[11], out2[12], out2[13], out2[14], out2[15],
            ],
            ck: out3,
            ik: out4,
            ak: [out2[0], out2[1], out2[2], out2[3], out2[4], out2[5]],
        }
    }

    /// f5*: the anonymity key used to conceal SQN_MS in AUTS.
    #[must_use]
    pub fn f5_star(&self, rand: &[u8; 16]) -> [u8; 6] {
        let out5 = self.out_n(&self.temp(rand), 12, 8);
        [out5[0], out5[1], out5[2], out5[3], out5[4], out5[5]]
    }

    /// Network side of resynchronisation (TS 33.102 §6.3.5): checks MAC-S in AUTS (computed
    /// with AMF* = 0) and returns SQN_MS.
    ///
    /// # Errors
    /// [`AkaFailure::Mac`] when MAC-S does not verify.
    pub fn resynchronise(&self, rand: &[u8; 16], auts: &[u8; AUTS_LEN]) -> Result<u64, AkaFailure> {
        let ak_star = self.f5_star(rand);
        let mut sqn = [0u8; 6];
        for (i, s) in sqn.iter_mut().enumerate() {
            *s = auts[i] ^ ak_star[i];
        }
        let mac_s = self.f1_star(rand, sqn, [0, 0]);
        if !crate::ct_eq(&mac_s, &auts[6..]) {
            return Err(AkaFailure::Mac);
        }
        Ok(sqn_value(sqn))
    }
}

fn encrypt(cipher: &Aes128, block: [u8; 16]) -> [u8; 16] {
    let mut b = block.into();
    cipher.encrypt_block(&mut b);
    b.into()
}

/// An authentication vector (TS 33.102 §6.3.2) as the IdMS keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthVector {
    /// The random challenge.
    pub rand: [u8; RAND_LEN],
    /// The expected response.
    pub xres: [u8; 8],
    /// The authentication token sent with RAND.
    pub autn: [u8; AUTN_LEN],
    /// The cipher key (not used by the IdMS; kept for completeness).
    pub ck: [u8; 16],
    /// The integrity key.
    pub ik: [u8; 16],
}

impl AuthVector {
    /// Builds the vector for `rand`, sequence number `sqn` and `amf`.
    #[must_use]
    pub fn generate(m: &Milenage, rand: [u8; RAND_LEN], sqn: u64, amf: [u8; 2]) -> Self {
        let sqn_b = sqn_bytes(sqn);
        let mac_a = m.f1(&rand, sqn_b, amf);
        let f = m.f2345(&rand);
        let mut autn = [0u8; AUTN_LEN];
        for i in 0..6 {
            autn[i] = sqn_b[i] ^ f.ak[i];
        }
        autn[6..8].copy_from_slice(&amf);
        autn[8..].copy_from_slice(&mac_a);
        Self {
            rand,
            xres: f.res,
            autn,
            ck: f.ck,
            ik: f.ik,
        }
    }
}

/// Why an AKA step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AkaFailure {
    /// MAC-A (or MAC-S) does not verify: the challenge was not made with this subscriber's key.
    #[error("AKA MAC failure")]
    Mac,
    /// SQN is not fresh (TS 33.102 §6.3.3): the client answers AUTS so the network can resynchronise.
    #[error("AKA synchronisation failure")]
    Sync {
        /// AUTS = SQN_MS ⊕ AK* ‖ MAC-S.
        auts: [u8; AUTS_LEN],
    },
}

/// The client side of AKA: a USIM holding K, OPc and the highest sequence number accepted.
///
/// Freshness (TS 33.102 §6.3.3 and Annex C, simplified to one array element): an SQN is
/// accepted when it is greater than the highest accepted SQN_MS and not more than `delta`
/// ahead of it; anything else, a replayed challenge in particular, gives a synchronisation
/// failure.
#[derive(Clone, Debug)]
pub struct Usim {
    milenage: Milenage,
    sqn_ms: u64,
    /// Largest accepted jump of SQN (TS 33.102 Annex C.2.1 "Δ"; 2^28 by default).
    pub delta: u64,
}

impl Usim {
    /// Creates a USIM whose highest accepted sequence number is `sqn_ms`.
    #[must_use]
    pub fn new(milenage: Milenage, sqn_ms: u64) -> Self {
        Self {
            milenage,
            sqn_ms: sqn_ms & MAX_SQN,
            delta: 1 << 28,
        }
    }

    /// The highest sequence number accepted so far.
    #[must_use]
    pub fn sqn_ms(&self) -> u64 {
        self.sqn_ms
    }

    /// Answers a challenge: checks MAC-A, then SQN freshness, and returns RES.
    ///
    /// # Errors
    /// [`AkaFailure::Mac`] for a challenge not made with this key, [`AkaFailure::Sync`] with
    /// AUTS for a stale or replayed SQN.
    pub fn respond(
        &mut self,
        rand: &[u8; RAND_LEN],
        autn: &[u8; AUTN_LEN],
    ) -> Result<[u8; 8], AkaFailure> {
        let f = self.milenage.f2345(rand);
        let mut sqn_b = [0u8; 6];
        for (i, s) in sqn_b.iter_mut().enumerate() {
            *s = autn[i] ^ f.ak[i];
        }
        let amf = [autn[6], autn[7]];
        let mac_a = self.milenage.f1(rand, sqn_b, amf);
        if !crate::ct_eq(&mac_a, &autn[8..]) {
            return Err(AkaFailure::Mac);
        }
        let sqn = sqn_value(sqn_b);
        if sqn <= self.sqn_ms || sqn - self.sqn_ms > self.delta {
            return Err(AkaFailure::Sync {
                auts: self.auts(rand),
            });
        }
        self.sqn_ms = sqn;
        Ok(f.res)
    }

    /// AUTS for a resynchronisation request.
    fn auts(&self, rand: &[u8; RAND_LEN]) -> [u8; AUTS_LEN] {
        let sqn = sqn_bytes(self.sqn_ms);
        let ak_star = self.milenage.f5_star(rand);
        let mac_s = self.milenage.f1_star(rand, sqn, [0, 0]);
        let mut auts = [0u8; AUTS_LEN];
        for i in 0..6 {
            auts[i] = sqn[i] ^ ak_star[i];
        }
        auts[6..].copy_from_slice(&mac_s);
        auts
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct File {
        test_sets: Vec<Set>,
    }
    #[derive(Deserialize)]
    struct Set {
        source: String,
        k: String,
        rand: String,
        sqn: String,
        amf: String,
        op: String,
        opc: String,
        f1: String,
        f1star: String,
        f2: String,
        f3: String,
        f4: String,
        f5: String,
        f5star: String,
    }

    fn h<const N: usize>(s: &str) -> [u8; N] {
        crate::hex::decode_array(s).unwrap()
    }

    fn sets() -> Vec<Set> {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/milenage.json"
        ));
        serde_json::from_str::<File>(text).unwrap().test_sets
    }

    #[test]
    fn ts_35_207_and_35_208_test_sets() {
        let sets = sets();
        assert_eq!(sets.len(), 21);
        for s in &sets {
            let m = Milenage::with_op(h(&s.k), h(&s.op));
            assert_eq!(m.opc(), h::<16>(&s.opc), "{} OPc", s.source);
            let m2 = Milenage::new(h(&s.k), h(&s.opc));
            let rand = h::<16>(&s.rand);
            let (sqn, amf) = (h::<6>(&s.sqn), h::<2>(&s.amf));
            for m in [&m, &m2] {
                assert_eq!(m.f1(&rand, sqn, amf), h::<8>(&s.f1), "{} f1", s.source);
                assert_eq!(
                    m.f1_star(&rand, sqn, amf),
                    h::<8>(&s.f1star),
                    "{} f1*",
                    s.source
                );
                let f = m.f2345(&rand);
                assert_eq!(f.res, h::<8>(&s.f2), "{} f2", s.source);
                assert_eq!(f.ck, h::<16>(&s.f3), "{} f3", s.source);
                assert_eq!(f.ik, h::<16>(&s.f4), "{} f4", s.source);
                assert_eq!(f.ak, h::<6>(&s.f5), "{} f5", s.source);
                assert_eq!(m.f5_star(&rand), h::<6>(&s.f5star), "{} f5*", s.source);
            }
        }
    }

    #[test]
    fn vector_usim_and_resync() {
        for s in sets() {
            let m = Milenage::new(h(&s.k), h(&s.opc));
            let rand = h::<16>(&s.rand);
            let sqn = sqn_value(h(&s.sqn));
            let amf = h::<2>(&s.amf);
            let v = AuthVector::generate(&m, rand, sqn, amf);
            // AUTN = SQN ⊕ AK ‖ AMF ‖ MAC-A with the published f5 and f1.
            let ak = h::<6>(&s.f5);
            let sqn_b = h::<6>(&s.sqn);
            for i in 0..6 {
                assert_eq!(v.autn[i], sqn_b[i] ^ ak[i]);
            }
            assert_eq!(v.autn[8..], h::<8>(&s.f1));
            assert_eq!(v.xres, h::<8>(&s.f2));

            // A USIM one behind accepts and answers XRES; a replay of the same AUTN is a sync failure.
            let mut usim = Usim::new(m.clone(), sqn - 1);
            assert_eq!(usim.respond(&rand, &v.autn), Ok(v.xres), "{}", s.source);
            assert_eq!(usim.sqn_ms(), sqn);
            let Err(AkaFailure::Sync { auts }) = usim.respond(&rand, &v.autn) else {
                panic!("{}: replayed AUTN accepted", s.source);
            };
            // The network recovers SQN_MS from AUTS; a flipped MAC-S bit is refused.
            assert_eq!(m.resynchronise(&rand, &auts), Ok(sqn));
            let mut bad = auts;
            bad[13] ^= 1;
            assert_eq!(m.resynchronise(&rand, &bad), Err(AkaFailure::Mac));

            // Any flipped AUTN bit in AMF or MAC-A is a MAC failure.
            for i in 6..16 {
                let mut bad = v.autn;
                bad[i] ^= 0x80;
                let mut fresh = Usim::new(m.clone(), 0);
                assert_eq!(
                    fresh.respond(&rand, &bad),
                    Err(AkaFailure::Mac),
                    "{} byte {i}",
                    s.source
                );
            }
        }
    }

    #[test]
    fn sqn_too_far_ahead_is_refused() {
        let m = Milenage::new([1; 16], [2; 16]);
        let v = AuthVector::generate(&m, [3; 16], 1 << 30, [0x80, 0]);
        let mut usim = Usim::new(m, 5);
        assert!(matches!(
            usim.respond(&[3; 16], &v.autn),
            Err(AkaFailure::Sync { .. })
        ));
        assert_eq!(usim.sqn_ms(), 5);
    }
}
