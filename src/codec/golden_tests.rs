//! Golden tests of the commit-log record.
//!
//! Records here are written field by field with [`Be`], the test's own big-endian writer, from
//! the layout in `docs/format.md`; none of them goes through the encoder. Two of them are also
//! pinned as hex produced by a separate Java program (`java.nio.ByteBuffer`,
//! `java.util.zip.CRC32`, OpenJDK 17) written from the same spec, and the Java hash values come
//! from `java.lang.String.hashCode` itself. The decoder must read these records back and the
//! encoder must reproduce them byte for byte.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

/// Big-endian byte writer, deliberately sharing nothing with the encoder.
#[derive(Default)]
struct Be(Vec<u8>);

impl Be {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn i16(mut self, v: i16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bytes(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    fn host(self, addr: SocketAddr) -> Self {
        let with_ip = match addr.ip() {
            IpAddr::V4(ip) => self.bytes(&ip.octets()),
            IpAddr::V6(ip) => self.bytes(&ip.octets()),
        };
        with_ip.i32(i32::from(addr.port()))
    }
}

/// CRC-32 with the top bit cleared, computed straight from crc32fast.
fn masked(data: &[u8]) -> u32 {
    crc32fast::hash(data) & 0x7FFF_FFFF
}

/// The 20-byte CRC property for `crc`: ten decimal digits, least significant first.
fn crc_property_bytes(crc: u32) -> Vec<u8> {
    let digits: String = format!("{crc:010}").chars().rev().collect();
    let mut out = b"__CRC32#\x01".to_vec();
    out.extend_from_slice(digits.as_bytes());
    out.push(0x02);
    out
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
}

fn v6(s: &str, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(s.parse::<Ipv6Addr>().unwrap()), port)
}

fn record(frame: Frame<'_>) -> RecordView<'_> {
    match frame {
        Frame::Record(view) => view,
        Frame::Blank { len } => panic!("expected a record, got a blank of {len}"),
    }
}

const ALL_MODES: [Verify; 3] = [Verify::Framing, Verify::Crc, Verify::RequireRecordCrc];

/// Every field of a hand-built record; `crc` appends the CRC property the way RocketMQ does.
#[derive(Clone, Copy)]
struct Hand<'a> {
    magic: u32,
    body_crc: Option<u32>,
    queue_id: i32,
    flag: i32,
    queue_offset: i64,
    physical_offset: i64,
    sys_flag: i32,
    born_timestamp: i64,
    born_host: SocketAddr,
    store_timestamp: i64,
    store_host: SocketAddr,
    reconsume_times: i32,
    prepared_transaction_offset: i64,
    body: &'a [u8],
    topic: &'a [u8],
    properties: &'a [u8],
    crc: bool,
}

impl Default for Hand<'_> {
    fn default() -> Self {
        Hand {
            magic: MAGIC_V1,
            body_crc: None,
            queue_id: 1,
            flag: 0,
            queue_offset: 5,
            physical_offset: 4096,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            born_host: v4(127, 0, 0, 1, 40000),
            store_timestamp: 1_700_000_000_001,
            store_host: v4(127, 0, 0, 1, 10911),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: b"hello",
            topic: b"orders",
            properties: b"",
            crc: true,
        }
    }
}

impl Hand<'_> {
    fn build(&self) -> Vec<u8> {
        let host_len = |a: SocketAddr| if a.is_ipv6() { 20 } else { 8 };
        let v2 = self.magic == MAGIC_V2;
        let separator = self.crc && self.properties.last().is_some_and(|&b| b != 0x02);
        let props_len = self.properties.len() + usize::from(separator) + if self.crc { 20 } else { 0 };
        let mut sys_flag = self.sys_flag;
        if self.born_host.is_ipv6() {
            sys_flag |= 1 << 4;
        }
        if self.store_host.is_ipv6() {
            sys_flag |= 1 << 5;
        }
        let total = 4
            + 4
            + 4
            + 4
            + 4
            + 8
            + 8
            + 4
            + 8
            + host_len(self.born_host)
            + 8
            + host_len(self.store_host)
            + 4
            + 8
            + 4
            + self.body.len()
            + if v2 { 2 } else { 1 }
            + self.topic.len()
            + 2
            + props_len;
        let b = Be::default()
            .i32(total as i32)
            .u32(self.magic)
            .u32(self.body_crc.unwrap_or_else(|| masked(self.body)))
            .i32(self.queue_id)
            .i32(self.flag)
            .i64(self.queue_offset)
            .i64(self.physical_offset)
            .i32(sys_flag)
            .i64(self.born_timestamp)
            .host(self.born_host)
            .i64(self.store_timestamp)
            .host(self.store_host)
            .i32(self.reconsume_times)
            .i64(self.prepared_transaction_offset)
            .i32(self.body.len() as i32)
            .bytes(self.body);
        let b = if v2 {
            b.i16(self.topic.len() as i16)
        } else {
            b.u8(self.topic.len() as u8)
        };
        let mut b = b.bytes(self.topic).i16(props_len as i16).bytes(self.properties);
        if separator {
            b = b.u8(0x02);
        }
        if self.crc {
            let crc = masked(&b.0);
            b = b.bytes(&crc_property_bytes(crc));
        }
        assert_eq!(b.0.len(), total);
        b.0
    }

    /// The spec the encoder needs to produce the same record; `None` for what it cannot write.
    fn spec(&self) -> RecordSpec<'_> {
        RecordSpec {
            topic: std::str::from_utf8(self.topic).unwrap(),
            queue_id: self.queue_id as u32,
            flag: self.flag,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            store_host: self.store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
            body: self.body,
            properties: self.properties,
        }
    }

    fn encode_and_seal(&self) -> Vec<u8> {
        let mut rec = EncodedRecord::encode(&self.spec()).unwrap();
        rec.seal(
            self.queue_offset as u64,
            self.physical_offset as u64,
            self.store_timestamp as u64,
        );
        rec.into_vec()
    }
}

// ---------------------------------------------------------------------------------------------
// Golden record A: V1, IPv4 hosts, properties ending in 0x02.

const GOLDEN_A_PROPS: &[u8] = b"TAGS\x01TagA\x02KEYS\x01order-1 order-2\x02";

/// Produced by the Java program; see the module docs.
const GOLDEN_A_JAVA: &str = "000000A0DAA320A74BF439260000000300000007000000000000002A0000000100000000000000080000018BCFE5\
6800C0A8010A0000D4310000018BCFE5687B0A00000100002A9F00000001000000000000303900000009313233343536\
37383909546F706963546573740033544147530154616741024B455953016F726465722D31206F726465722D32025F5F\
435243333223013537353736323130383002";

/// Record A written out one field at a time, offsets as in `docs/format.md`.
fn golden_a() -> Vec<u8> {
    let head = Be::default()
        .i32(160) //                      0  TOTALSIZE
        .u32(0xDAA3_20A7) //              4  MAGICCODE (V1)
        .u32(0x4BF4_3926) //              8  BODYCRC: CRC32("123456789") = 0xCBF43926, masked
        .i32(3) //                       12  QUEUEID
        .i32(7) //                       16  FLAG
        .i64(42) //                      20  QUEUEOFFSET
        .i64(4_294_967_296) //           28  PHYSICALOFFSET
        .i32(8) //                       36  SYSFLAG: TRANSACTION_COMMIT_TYPE
        .i64(1_700_000_000_000) //       40  BORNTIMESTAMP
        .bytes(&[192, 168, 1, 10]) //    48  BORNHOST ip
        .i32(54321) //                   52  BORNHOST port
        .i64(1_700_000_000_123) //       56  STORETIMESTAMP
        .bytes(&[10, 0, 0, 1]) //        64  STOREHOSTADDRESS ip
        .i32(10911) //                   68  STOREHOSTADDRESS port
        .i32(1) //                       72  RECONSUMETIMES
        .i64(12345) //                   76  PREPARED TRANSACTION OFFSET
        .i32(9) //                       84  BODYLENGTH
        .bytes(b"123456789") //          88  BODY
        .u8(9) //                        97  TOPICLENGTH (1 byte in V1)
        .bytes(b"TopicTest") //          98  TOPIC
        .i16(51) //                     107  PROPERTIESLENGTH: 31 + 20
        .bytes(GOLDEN_A_PROPS); //      109  PROPERTIES, already ending in 0x02
    let crc = masked(&head.0); //             the CRC property covers [0, 140)
    assert_eq!(crc, 801_267_575);
    head.bytes(b"__CRC32#\x01")
        .bytes(b"5757621080") //        149  digits of 0801267575, least significant first
        .u8(0x02)
        .0
}

fn golden_a_hand() -> Hand<'static> {
    Hand {
        magic: MAGIC_V1,
        body_crc: None,
        queue_id: 3,
        flag: 7,
        queue_offset: 42,
        physical_offset: 4_294_967_296,
        sys_flag: TRANSACTION_COMMIT_TYPE,
        born_timestamp: 1_700_000_000_000,
        born_host: v4(192, 168, 1, 10, 54321),
        store_timestamp: 1_700_000_000_123,
        store_host: v4(10, 0, 0, 1, 10911),
        reconsume_times: 1,
        prepared_transaction_offset: 12345,
        body: b"123456789",
        topic: b"TopicTest",
        properties: GOLDEN_A_PROPS,
        crc: true,
    }
}

#[test]
fn golden_a_matches_java_and_the_generic_builder() {
    let a = golden_a();
    assert_eq!(a, unhex(GOLDEN_A_JAVA));
    assert_eq!(a, golden_a_hand().build());
}

#[test]
fn golden_a_decodes_to_its_fields() {
    let a = golden_a();
    for verify in ALL_MODES {
        let r = record(decode(&a, verify).unwrap());
        assert_eq!(r.total_size, 160);
        assert_eq!(r.magic, MAGIC_V1);
        assert_eq!(r.body_crc, 0x4BF4_3926);
        assert_eq!(r.queue_id, 3);
        assert_eq!(r.flag, 7);
        assert_eq!(r.queue_offset, 42);
        assert_eq!(r.physical_offset, 4_294_967_296);
        assert_eq!(r.sys_flag, TRANSACTION_COMMIT_TYPE);
        assert_eq!(r.transaction_type(), TRANSACTION_COMMIT_TYPE);
        assert_eq!(r.born_timestamp, 1_700_000_000_000);
        assert_eq!(r.born_host, v4(192, 168, 1, 10, 54321));
        assert_eq!(r.store_timestamp, 1_700_000_000_123);
        assert_eq!(r.store_host, v4(10, 0, 0, 1, 10911));
        assert_eq!(r.reconsume_times, 1);
        assert_eq!(r.prepared_transaction_offset, 12345);
        assert_eq!(r.body, b"123456789");
        assert_eq!(r.topic, "TopicTest");
        assert_eq!(
            r.properties.as_bytes(),
            &a[109..],
            "properties include the CRC property"
        );
        assert_eq!((r.body_offset, r.topic_offset, r.properties_offset), (88, 98, 109));
        assert_eq!(r.tags(), Some("TagA"));
        assert_eq!(r.tags_code(), 2_598_919);
        assert_eq!(r.keys().collect::<Vec<_>>(), ["order-1", "order-2"]);
        assert_eq!(r.user_properties().count(), 0);
        assert_eq!(r.property(CRC_PROPERTY_KEY), Some("5757621080"));
        assert!(r.has_record_crc());
        assert_eq!(r.offset_msg_id(), "0A00000100002A9F0000000100000000");
    }
    assert_eq!(peek_header(&a), Some((160, MAGIC_V1)));
}

#[test]
fn encoder_reproduces_golden_a() {
    let hand = golden_a_hand();
    let mut rec = EncodedRecord::encode(&hand.spec()).unwrap();
    assert_eq!(rec.len(), 160);
    assert!(!rec.is_empty());
    assert_eq!(rec.body_crc(), 0x4BF4_3926);
    // Before sealing, the fields the store assigns are zero and so is the CRC.
    let unsealed = rec.as_bytes();
    assert_eq!(&unsealed[20..36], &[0; 16]);
    assert_eq!(&unsealed[56..64], &[0; 8]);
    assert_eq!(&unsealed[149..159], b"0000000000");
    rec.seal(42, 4_294_967_296, 1_700_000_000_123);
    assert_eq!(rec.as_bytes(), golden_a().as_slice());

    // A reused buffer full of junk gives the same bytes.
    let junk = vec![0xEE; 4096];
    let mut again = EncodedRecord::encode_into(&hand.spec(), junk).unwrap();
    again.seal(42, 4_294_967_296, 1_700_000_000_123);
    assert_eq!(again.into_vec(), golden_a());
}

#[test]
fn sealing_again_overwrites_the_previous_seal() {
    let hand = golden_a_hand();
    let mut rec = EncodedRecord::encode(&hand.spec()).unwrap();
    rec.seal(1, 2, 3);
    rec.seal(42, 4_294_967_296, 1_700_000_000_123);
    assert_eq!(rec.as_bytes(), golden_a().as_slice());
    rec.seal(0, 0, 0);
    let expected = Hand {
        queue_offset: 0,
        physical_offset: 0,
        store_timestamp: 0,
        ..hand
    }
    .build();
    assert_eq!(rec.as_bytes(), expected.as_slice());
}

// ---------------------------------------------------------------------------------------------
// Golden record B: V2 (200-byte topic), IPv6 born and store hosts, properties not ending in 0x02
// (so a separator precedes the CRC property), empty body.

const GOLDEN_B_JAVA: &str = "00000154DAA320AB0000000000000000FFFFFFFF00000000000000007FFFFFFFFFFFFFFF00000030FFFFFFFFFFFF\
FFFB20010DB80000000000000000000000010000FFFF0000000000000000FE8000000000000000010002000300040000\
000000000000FFFFFFFFFFFFFFFF0000000000C878787878787878787878787878787878787878787878787878787878\
787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878\
787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878\
787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878\
787878787878787878787878787878787878787878787878787878780018610162025F5F435243333223013037393138\
303236353102";

fn golden_b_hand(topic: &[u8]) -> Hand<'_> {
    Hand {
        magic: MAGIC_V2,
        body_crc: None,
        queue_id: 0,
        flag: -1,
        queue_offset: 0,
        physical_offset: i64::MAX,
        sys_flag: 0,
        born_timestamp: -5,
        born_host: v6("2001:db8::1", 65535),
        store_timestamp: 0,
        store_host: v6("fe80::1:2:3:4", 0),
        reconsume_times: 0,
        prepared_transaction_offset: -1,
        body: b"",
        topic,
        properties: b"a\x01b",
        crc: true,
    }
}

#[test]
fn golden_b_v2_ipv6_matches_java_decodes_and_reencodes() {
    let topic = vec![b'x'; 200];
    let hand = golden_b_hand(&topic);
    let b = hand.build();
    assert_eq!(b, unhex(GOLDEN_B_JAVA));
    assert_eq!(b.len(), 340);
    // The separator RocketMQ adds when the properties do not end in 0x02.
    assert_eq!(&b[340 - 21..340 - 20], &[0x02]);

    for verify in ALL_MODES {
        let r = record(decode(&b, verify).unwrap());
        assert_eq!(r.magic, MAGIC_V2);
        assert_eq!(r.sys_flag, BORNHOST_V6 | STOREHOST_V6);
        assert_eq!(r.body_crc, 0);
        assert_eq!(r.flag, -1);
        assert_eq!(r.physical_offset, i64::MAX as u64);
        assert_eq!(r.born_timestamp, -5);
        assert_eq!(r.born_host, v6("2001:db8::1", 65535));
        assert_eq!(r.store_host, v6("fe80::1:2:3:4", 0));
        assert_eq!(r.prepared_transaction_offset, -1);
        assert_eq!(r.body, b"");
        assert_eq!(r.topic.len(), 200);
        // 48 + 20 (born) + 8 + 20 (store) + 4 + 8 + 4 = 112; + 2-byte topic length.
        assert_eq!((r.body_offset, r.topic_offset), (112, 114));
        assert_eq!(r.properties, "a\u{1}b\u{2}__CRC32#\u{1}0791802651\u{2}");
        assert_eq!(r.user_properties().collect::<Vec<_>>(), [("a", "b")]);
        assert_eq!(r.tags(), None);
        assert_eq!(r.tags_code(), 0);
        assert_eq!(r.keys().count(), 0);
    }
    assert_eq!(hand.encode_and_seal(), b);
}

#[test]
fn bodies_of_every_length_class_reencode() {
    // The encoder hashes the body once and joins CRCs by polynomial arithmetic whose cost depends
    // on the bytes of the length: cover lengths with one, two and three non-zero bytes.
    for len in [0, 1, 255, 256, 65_535, 65_536, 70_001, (1 << 20) + 3, 0x01_02_03] {
        let body: Vec<u8> = (0..len).map(|i| (i * 31 + i / 7) as u8).collect();
        let hand = Hand {
            body: &body,
            properties: b"TAGS\x01big\x02",
            ..Hand::default()
        };
        let bytes = hand.build();
        assert_eq!(hand.encode_and_seal(), bytes, "body of {len} bytes");
        let r = record(decode(&bytes, Verify::RequireRecordCrc).unwrap());
        assert_eq!(r.body.len(), len);
    }
}

// ---------------------------------------------------------------------------------------------
// Host address families.

#[test]
fn ipv6_born_host_moves_every_later_field_by_12() {
    let hand = Hand {
        born_host: v6("::1", 1234),
        ..Hand::default()
    };
    let bytes = hand.build();
    assert_eq!(&bytes[36..40], &BORNHOST_V6.to_be_bytes());
    assert_eq!(&bytes[48..64], &Ipv6Addr::LOCALHOST.octets());
    assert_eq!(&bytes[64..68], &1234i32.to_be_bytes());
    assert_eq!(&bytes[68..76], &hand.store_timestamp.to_be_bytes());
    let r = record(decode(&bytes, Verify::RequireRecordCrc).unwrap());
    assert_eq!(r.born_host, v6("::1", 1234));
    assert_eq!(r.store_host, hand.store_host);
    assert_eq!(r.store_timestamp, hand.store_timestamp);
    assert_eq!(r.body_offset, 88 + 12);
    assert_eq!(hand.encode_and_seal(), bytes);
}

#[test]
fn ipv6_store_host_sets_bit_5() {
    let hand = Hand {
        store_host: v6("2001:db8:85a3::8a2e:370:7334", 10911),
        ..Hand::default()
    };
    let bytes = hand.build();
    assert_eq!(&bytes[36..40], &STOREHOST_V6.to_be_bytes());
    assert_eq!(&bytes[56..64], &hand.store_timestamp.to_be_bytes());
    let IpAddr::V6(ip) = hand.store_host.ip() else {
        unreachable!()
    };
    assert_eq!(&bytes[64..80], &ip.octets());
    let r = record(decode(&bytes, Verify::RequireRecordCrc).unwrap());
    assert_eq!(r.store_host, hand.store_host);
    assert_eq!(r.body_offset, 88 + 12);
    assert_eq!(hand.encode_and_seal(), bytes);
    assert_eq!(
        r.offset_msg_id(),
        "20010DB885A3000000008A2E0370733400002A9F0000000000001000"
    );
}

#[test]
fn encoder_derives_the_address_bits_and_keeps_the_others() {
    // The caller's v6 bits are wrong both ways; every other bit passes through.
    let caller_bits = COMPRESSED | MULTI_TAGS | BORNHOST_V6 | NEED_UNWRAP | COMPRESSION_ZSTD;
    let hand = Hand {
        sys_flag: caller_bits,
        store_host: v6("::2", 1),
        ..Hand::default()
    };
    let mut rec = EncodedRecord::encode(&hand.spec()).unwrap();
    rec.seal(0, 0, 0);
    let r = record(decode(rec.as_bytes(), Verify::RequireRecordCrc).unwrap());
    assert_eq!(
        r.sys_flag,
        COMPRESSED | MULTI_TAGS | STOREHOST_V6 | NEED_UNWRAP | COMPRESSION_ZSTD
    );
    assert_eq!(r.sys_flag & COMPRESSION_TYPE_MASK, COMPRESSION_ZSTD);
}

// ---------------------------------------------------------------------------------------------
// Topic length and message version.

#[test]
fn v1_up_to_127_bytes_v2_from_128() {
    for (len, magic, fixed) in [(127, MAGIC_V1, 91), (128, MAGIC_V2, 92)] {
        let topic = vec![b't'; len];
        let hand = Hand {
            magic,
            topic: &topic,
            ..Hand::default()
        };
        let bytes = hand.build();
        assert_eq!(bytes.len(), fixed + len + 5 + 20);
        assert_eq!(hand.encode_and_seal(), bytes, "topic of {len} bytes");
        let r = record(decode(&bytes, Verify::RequireRecordCrc).unwrap());
        assert_eq!((r.magic, r.topic.len()), (magic, len));
    }
}

#[test]
fn v1_topic_length_is_read_unsigned() {
    // RocketMQ never writes this (V1 only up to 127 bytes); the byte is read as 0..=255.
    let topic = vec![b't'; 200];
    let bytes = Hand {
        topic: &topic,
        ..Hand::default()
    }
    .build();
    let r = record(decode(&bytes, Verify::RequireRecordCrc).unwrap());
    assert_eq!((r.magic, r.topic.len()), (MAGIC_V1, 200));
}

#[test]
fn longest_topic_is_accepted_and_one_more_byte_is_not() {
    let topic = "t".repeat(MAX_ENCODED_TOPIC_LEN);
    let hand = Hand {
        magic: MAGIC_V2,
        topic: topic.as_bytes(),
        ..Hand::default()
    };
    assert_eq!(hand.encode_and_seal(), hand.build());
    let longer = "t".repeat(MAX_ENCODED_TOPIC_LEN + 1);
    let err = EncodedRecord::encode(
        &Hand {
            topic: longer.as_bytes(),
            ..Hand::default()
        }
        .spec(),
    )
    .unwrap_err();
    assert!(matches!(err, EncodeError::InvalidTopic { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The BLANK filler.

#[test]
fn blank_filler() {
    assert_eq!(encode_blank(1000), [0x00, 0x00, 0x03, 0xE8, 0xCB, 0xD4, 0x31, 0x94]);
    let mut tail = encode_blank(1000).to_vec();
    tail.resize(1000, 0);
    for verify in ALL_MODES {
        assert!(matches!(decode(&tail, verify), Ok(Frame::Blank { len: 1000 })));
        // Only the filler's own 8 bytes are needed.
        assert!(matches!(decode(&tail[..8], verify), Ok(Frame::Blank { len: 1000 })));
    }
    assert!(matches!(
        decode(&encode_blank(8), Verify::Crc),
        Ok(Frame::Blank { len: 8 })
    ));
    assert_eq!(peek_header(&tail), Some((1000, MAGIC_BLANK)));
    for bad in [7, 0, -1, i32::MIN] {
        let filler = Be::default().i32(bad).u32(MAGIC_BLANK).0;
        assert_eq!(
            decode(&filler, Verify::Crc).unwrap_err(),
            DecodeError::BadTotalSize { total_size: bad }
        );
    }
    assert_eq!(
        decode(&tail[..7], Verify::Crc).unwrap_err(),
        DecodeError::Truncated { need: 8, have: 7 }
    );
}

// ---------------------------------------------------------------------------------------------
// Properties and the CRC property.

#[test]
fn empty_properties_hold_only_the_crc_property() {
    let hand = Hand::default();
    let bytes = hand.build();
    assert_eq!(bytes.len(), 91 + 5 + 6 + 20);
    // No separator: empty properties do not "not end" in 0x02.
    assert_eq!(&bytes[bytes.len() - 22..bytes.len() - 20], &20i16.to_be_bytes());
    assert_eq!(hand.encode_and_seal(), bytes);
    let r = record(decode(&bytes, Verify::RequireRecordCrc).unwrap());
    assert!(r.has_record_crc());
    assert_eq!(r.properties.len(), CRC_PROPERTY_LEN);
    assert_eq!(r.user_properties().count(), 0);
    assert_eq!((r.tags(), r.tags_code(), r.uniq_key()), (None, 0, None));
}

#[test]
fn properties_not_ending_in_0x02_get_a_separator() {
    let hand = Hand {
        properties: b"k\x01v",
        ..Hand::default()
    };
    let bytes = hand.build();
    assert_eq!(&bytes[bytes.len() - 24..bytes.len() - 20], b"k\x01v\x02");
    assert_eq!(&bytes[bytes.len() - 26..bytes.len() - 24], &24i16.to_be_bytes());
    assert_eq!(hand.encode_and_seal(), bytes);

    let hand = Hand {
        properties: b"k\x01v\x02",
        ..Hand::default()
    };
    let bytes = hand.build();
    assert_eq!(&bytes[bytes.len() - 26..bytes.len() - 24], &24i16.to_be_bytes());
    assert_eq!(hand.encode_and_seal(), bytes);
}

#[test]
fn rocketmq_record_without_crc_property_is_checked_by_body_crc() {
    let hand = Hand {
        properties: b"TAGS\x01TagA\x02UNIQ_KEY\x01AC11000100002A9F0000000000000001\x02",
        crc: false,
        ..Hand::default()
    };
    let bytes = hand.build();
    let r = record(decode(&bytes, Verify::Crc).unwrap());
    assert!(!r.has_record_crc());
    assert_eq!(r.tags(), Some("TagA"));
    assert_eq!(r.uniq_key(), Some("AC11000100002A9F0000000000000001"));
    assert_eq!(
        decode(&bytes, Verify::RequireRecordCrc).unwrap_err(),
        DecodeError::MissingRecordCrc
    );

    // A damaged body is caught by the body CRC, and only when asked.
    let mut damaged = bytes.clone();
    damaged[88] ^= 0x01;
    assert!(decode(&damaged, Verify::Framing).is_ok());
    assert_eq!(
        decode(&damaged, Verify::Crc).unwrap_err(),
        DecodeError::BodyCrcMismatch {
            stored: masked(b"hello"),
            computed: masked(b"iello"),
        }
    );

    // No properties at all.
    let bare = Hand {
        crc: false,
        ..Hand::default()
    }
    .build();
    assert_eq!(bare.len(), 91 + 5 + 6);
    let r = record(decode(&bare, Verify::Crc).unwrap());
    assert_eq!((r.properties, r.tags_code()), ("", 0));
}

#[test]
fn record_crc_is_checked_instead_of_body_crc() {
    // A wrong BODYCRC written consistently under the record CRC passes, as in RocketMQ's
    // forceVerifyPropCRC mode: the record CRC covers the body itself.
    let bytes = Hand {
        body_crc: Some(12345),
        ..Hand::default()
    }
    .build();
    assert!(decode(&bytes, Verify::RequireRecordCrc).is_ok());
    assert!(decode(&bytes, Verify::Crc).is_ok());
}

#[test]
fn malformed_crc_property_is_reported() {
    for props in [
        &b"__CRC32#\x01123\x02"[..],
        b"x\x01y\x02__CRC32#\x01123456789x\x02",
        b"__CRC32#\x018463847412\x02", // 2147483648: more than a masked CRC
    ] {
        let bytes = Hand {
            properties: props,
            crc: false,
            ..Hand::default()
        }
        .build();
        assert!(decode(&bytes, Verify::Framing).is_ok());
        for verify in [Verify::Crc, Verify::RequireRecordCrc] {
            assert_eq!(
                decode(&bytes, verify).unwrap_err(),
                DecodeError::BadRecordCrcProperty,
                "{props:?}"
            );
        }
    }
}

#[test]
fn wrong_record_crc_is_reported_with_both_values() {
    let mut bytes = golden_a();
    // Digit 0 is the least significant: 0801267575 + 1.
    bytes[149] = b'6';
    assert_eq!(
        decode(&bytes, Verify::Crc).unwrap_err(),
        DecodeError::RecordCrcMismatch {
            stored: 801_267_576,
            computed: 801_267_575,
        }
    );
}

#[test]
fn property_parsing_follows_rocketmq() {
    let blob = "a\u{1}1\u{2}junk\u{2}\u{1}nokey\u{2}novalue\u{1}\u{2}b\u{1}x\u{1}y\u{2}a\u{1}2\u{2}last\u{1}z";
    assert_eq!(
        properties(blob).collect::<Vec<_>>(),
        [("a", "1"), ("b", "x\u{1}y"), ("a", "2"), ("last", "z")]
    );
    assert_eq!(properties("").count(), 0);
    assert_eq!(properties("\u{2}\u{2}").count(), 0);
}

#[test]
fn view_accessors() {
    let props = b"KEYS\x01 k1  k2 \x02color\x01red\x02TAGS\x01\x02TAGS\x01B\x02size\x01L\x02";
    let bytes = Hand {
        properties: props,
        ..Hand::default()
    }
    .build();
    let r = record(decode(&bytes, Verify::RequireRecordCrc).unwrap());
    assert_eq!(r.keys().collect::<Vec<_>>(), ["k1", "k2"]);
    assert_eq!(r.tags(), Some("B"));
    assert_eq!(r.tags_code(), 66);
    assert_eq!(r.property("color"), Some("red"));
    assert_eq!(r.property("missing"), None);
    assert_eq!(
        r.user_properties().collect::<Vec<_>>(),
        [("color", "red"), ("size", "L")]
    );
}

#[test]
fn encode_properties_rules() {
    let mut out = b"prefix".to_vec();
    encode_properties([("TAGS", "TagA"), ("empty", ""), ("KEYS", "a b")], &mut out).unwrap();
    assert_eq!(out, b"prefixTAGS\x01TagA\x02KEYS\x01a b\x02");
    for (key, value) in [
        ("", "v"),
        ("k\u{1}", "v"),
        ("k\u{2}", "v"),
        ("k", "v\u{1}"),
        ("k", "v\u{2}"),
        (CRC_PROPERTY_KEY, "0000000000"),
    ] {
        let mut out = b"prefix".to_vec();
        let err = encode_properties([("ok", "fine"), (key, value)], &mut out).unwrap_err();
        assert!(matches!(err, EncodeError::InvalidProperty { .. }), "{err}");
        assert_eq!(out, b"prefix", "restored after an error");
    }
}

#[test]
fn properties_limit_counts_the_crc_property() {
    let at_limit = vec![b'p'; MAX_PROPERTIES_LEN - 20 - 1]; // plus the separator: exactly 32767
    let over = vec![b'p'; MAX_PROPERTIES_LEN - 20];
    let ok = Hand {
        properties: &at_limit,
        ..Hand::default()
    };
    let bytes = ok.encode_and_seal();
    assert_eq!(bytes, ok.build());
    let r = record(decode(&bytes, Verify::RequireRecordCrc).unwrap());
    assert_eq!(r.properties.len(), MAX_PROPERTIES_LEN);
    let err = EncodedRecord::encode(
        &Hand {
            properties: &over,
            ..Hand::default()
        }
        .spec(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EncodeError::PropertiesTooLarge {
                size: 32768,
                max: 32767
            }
        ),
        "{err}"
    );
}

#[test]
fn encoder_rejects_what_the_format_cannot_hold() {
    let base = Hand::default();
    let mut spec = base.spec();
    spec.topic = "";
    assert!(matches!(
        EncodedRecord::encode(&spec),
        Err(EncodeError::InvalidTopic { .. })
    ));
    let mut spec = base.spec();
    spec.queue_id = 1 << 31;
    assert!(matches!(
        EncodedRecord::encode(&spec),
        Err(EncodeError::QueueIdOutOfRange { .. })
    ));
    let mut spec = base.spec();
    spec.queue_id = i32::MAX as u32;
    assert!(EncodedRecord::encode(&spec).is_ok());
    let mut spec = base.spec();
    spec.properties = b"k\x01\xFF\x02";
    assert!(matches!(
        EncodedRecord::encode(&spec),
        Err(EncodeError::InvalidProperty { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Hashes and ids.

#[test]
fn java_string_hash_code() {
    // Values printed by java.lang.String.hashCode.
    for (s, h) in [
        ("TagA", 2_598_919),
        ("", 0),
        ("中文", 646_394),
        ("😀", 1_772_899),
        ("a😀b", 57_849_694),
        ("hello world", 1_794_106_052),
        ("polygenelubricants", i32::MIN),
        ("订单-😀-TagZ", -679_010_704),
    ] {
        assert_eq!(java_hash(s), h, "{s}");
        assert_eq!(tags_code(s), i64::from(h), "{s}");
    }
    // Sign extension, not zero extension.
    assert_eq!(tags_code("polygenelubricants"), -2_147_483_648);
}

#[test]
fn masked_crc() {
    assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    assert_eq!(masked_crc32(b"123456789"), 0x4BF4_3926);
    assert_eq!(masked_crc32(b""), 0);
}

#[test]
fn offset_msg_id_golden() {
    let host = v4(10, 0, 0, 1, 10911);
    assert_eq!(offset_msg_id(host, 4_294_967_296), "0A00000100002A9F0000000100000000");
    assert_eq!(
        parse_offset_msg_id("0A00000100002A9F0000000100000000"),
        Some((host, 4_294_967_296))
    );
    assert_eq!(
        parse_offset_msg_id("0a00000100002a9f0000000100000000"),
        Some((host, 4_294_967_296))
    );
    let host6 = v6("2001:db8::1", 443);
    let id = offset_msg_id(host6, 7);
    assert_eq!(id, "20010DB8000000000000000000000001000001BB0000000000000007");
    assert_eq!(parse_offset_msg_id(&id), Some((host6, 7)));
    for bad in [
        "",
        "0A00000100002A9F000000010000000",   // 31 digits
        "0A00000100002A9F00000001000000000", // 33
        "0A00000100002A9F000000010000000G",
        "0A00000100010000000000010000000A", // port 65536
        "0A00000100002A9F8000000000000000", // negative offset
        "0A000001000€2A9F0000000100000",    // 32 bytes, not ASCII
        "+A00000100002A9F0000000100000000",
    ] {
        assert_eq!(parse_offset_msg_id(bad), None, "{bad}");
    }
}

// ---------------------------------------------------------------------------------------------
// Damage.

#[test]
fn every_truncation_point_is_an_error() {
    let topic = vec![b'x'; 200];
    for full in [golden_a(), golden_b_hand(&topic).build()] {
        for cut in 0..full.len() {
            for verify in ALL_MODES {
                let expected = if cut < 8 {
                    DecodeError::Truncated { need: 8, have: cut }
                } else {
                    DecodeError::Truncated {
                        need: full.len(),
                        have: cut,
                    }
                };
                assert_eq!(decode(&full[..cut], verify).unwrap_err(), expected);
            }
        }
    }
}

#[test]
fn every_bit_flip_is_detected_when_the_record_crc_is_required() {
    let topic = vec![b'x'; 200];
    for full in [golden_a(), golden_b_hand(&topic).build()] {
        for bit in 0..full.len() * 8 {
            let mut damaged = full.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode(&damaged, Verify::RequireRecordCrc).is_err(),
                "bit {bit} of {}",
                full.len()
            );
        }
    }
}

#[test]
fn bit_flips_in_header_body_and_properties_are_detected_by_crc_mode() {
    // Verify::Crc falls back to the body CRC when the record has no CRC property, so a flip
    // that unmakes the property (its key, its 0x01, the 0x02 before it) can only be caught by
    // RequireRecordCrc. Every other flip must be caught.
    let topic = vec![b'x'; 200];
    for full in [golden_a(), golden_b_hand(&topic).build()] {
        let key_start = full.len() - CRC_PROPERTY_LEN;
        let fallback = key_start - 1..key_start + CRC_PROPERTY_KEY.len() + 1;
        for bit in 0..full.len() * 8 {
            if fallback.contains(&(bit / 8)) {
                continue;
            }
            let mut damaged = full.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&damaged, Verify::Crc).is_err(), "bit {bit} of {}", full.len());
        }
    }
    // The three regions named in the brief, with the error each gives.
    let a = golden_a();
    let mut header = a.clone();
    header[15] ^= 0x01; // queue id
    assert!(matches!(
        decode(&header, Verify::Crc),
        Err(DecodeError::RecordCrcMismatch { .. })
    ));
    let mut body = a.clone();
    body[90] ^= 0x20;
    assert!(matches!(
        decode(&body, Verify::Crc),
        Err(DecodeError::RecordCrcMismatch { .. })
    ));
    let mut props = a.clone();
    props[115] ^= 0x20; // TagA -> Taga
    assert!(matches!(
        decode(&props, Verify::Crc),
        Err(DecodeError::RecordCrcMismatch { .. })
    ));
    // Framing alone does not look at CRCs.
    assert!(decode(&props, Verify::Framing).is_ok());
}

fn with_total_size(rec: &[u8], total: i32) -> Vec<u8> {
    let mut out = rec.to_vec();
    out[..4].copy_from_slice(&total.to_be_bytes());
    out
}

#[test]
fn total_size_lies() {
    let a = golden_a();
    // Too small.
    assert_eq!(
        decode(&with_total_size(&a, 159), Verify::Framing).unwrap_err(),
        DecodeError::LengthMismatch {
            declared: 159,
            computed: 160
        }
    );
    // Too large, with more bytes behind.
    let mut longer = with_total_size(&a, 161);
    longer.push(0);
    assert_eq!(
        decode(&longer, Verify::Framing).unwrap_err(),
        DecodeError::LengthMismatch {
            declared: 161,
            computed: 160
        }
    );
    // Too large, at the end of the buffer.
    assert_eq!(
        decode(&with_total_size(&a, i32::MAX), Verify::Framing).unwrap_err(),
        DecodeError::Truncated {
            need: i32::MAX as usize,
            have: 160
        }
    );
    // Negative or below the smallest record.
    for bad in [-160, -1, i32::MIN, 0, 8, 90] {
        assert_eq!(
            decode(&with_total_size(&a, bad), Verify::Framing).unwrap_err(),
            DecodeError::BadTotalSize { total_size: bad }
        );
    }
    let topic = vec![b'x'; 200];
    let b = golden_b_hand(&topic).build();
    assert_eq!(
        decode(&with_total_size(&b, 91), Verify::Framing).unwrap_err(),
        DecodeError::BadTotalSize { total_size: 91 }
    );
}

#[test]
fn length_fields_that_overrun_the_record() {
    let a = golden_a();
    // Body length past TOTALSIZE: the mismatch names at least what the fields need.
    let mut body = a.clone();
    body[84..88].copy_from_slice(&1_000_000i32.to_be_bytes());
    assert_eq!(
        decode(&body, Verify::Framing).unwrap_err(),
        DecodeError::LengthMismatch {
            declared: 160,
            computed: 91 + 1_000_000
        }
    );
    let mut body = a.clone();
    body[84..88].copy_from_slice(&(-9i32).to_be_bytes());
    assert_eq!(
        decode(&body, Verify::Framing).unwrap_err(),
        DecodeError::NegativeField {
            field: "body length",
            value: -9
        }
    );
    let mut topic = a.clone();
    topic[97] = 255;
    assert!(matches!(
        decode(&topic, Verify::Framing),
        Err(DecodeError::LengthMismatch { declared: 160, .. })
    ));
    let mut props = a.clone();
    props[107..109].copy_from_slice(&(-1i16).to_be_bytes());
    assert_eq!(
        decode(&props, Verify::Framing).unwrap_err(),
        DecodeError::NegativeField {
            field: "properties length",
            value: -1
        }
    );
    // IPv6 bits on a record laid out for IPv4: the fixed part alone outgrows TOTALSIZE.
    let mut flags = golden_a();
    flags[39] |= (BORNHOST_V6 | STOREHOST_V6) as u8;
    assert!(matches!(
        decode(&flags, Verify::Framing),
        Err(DecodeError::LengthMismatch { declared: 160, .. })
    ));
    // V2 topic length negative.
    let topic_bytes = vec![b'x'; 200];
    let mut b = golden_b_hand(&topic_bytes).build();
    b[112..114].copy_from_slice(&(-2i16).to_be_bytes());
    assert_eq!(
        decode(&b, Verify::Framing).unwrap_err(),
        DecodeError::NegativeField {
            field: "topic length",
            value: -2
        }
    );
}

#[test]
fn unknown_magic() {
    let mut a = golden_a();
    a[4..8].copy_from_slice(&0xDAA3_20A8u32.to_be_bytes());
    assert_eq!(
        decode(&a, Verify::Framing).unwrap_err(),
        DecodeError::BadMagic { magic: 0xDAA3_20A8 }
    );
    // A zeroed (preallocated, never written) region.
    assert_eq!(
        decode(&[0; 64], Verify::Framing).unwrap_err(),
        DecodeError::BadMagic { magic: 0 }
    );
    assert_eq!(peek_header(&[0; 8]), Some((0, 0)));
    assert_eq!(peek_header(&[0; 7]), None);
}

#[test]
fn invalid_utf8_topic_and_properties() {
    let bytes = Hand {
        topic: b"top\xFFic",
        ..Hand::default()
    }
    .build();
    for verify in ALL_MODES {
        assert_eq!(
            decode(&bytes, verify).unwrap_err(),
            DecodeError::InvalidUtf8 { field: "topic" }
        );
    }
    let bytes = Hand {
        properties: b"k\x01\xC3\x28\x02",
        ..Hand::default()
    }
    .build();
    assert_eq!(
        decode(&bytes, Verify::RequireRecordCrc).unwrap_err(),
        DecodeError::InvalidUtf8 { field: "properties" }
    );
}

#[test]
fn negative_ids_and_offsets_and_bad_ports() {
    let cases: [(Hand<'_>, DecodeError); 5] = [
        (
            Hand {
                queue_id: -1,
                ..Hand::default()
            },
            DecodeError::NegativeField {
                field: "queue id",
                value: -1,
            },
        ),
        (
            Hand {
                queue_offset: -2,
                ..Hand::default()
            },
            DecodeError::NegativeField {
                field: "queue offset",
                value: -2,
            },
        ),
        (
            Hand {
                physical_offset: i64::MIN,
                ..Hand::default()
            },
            DecodeError::NegativeField {
                field: "physical offset",
                value: i64::MIN,
            },
        ),
        (
            Hand::default(),
            DecodeError::BadPort {
                field: "born host",
                port: 65536,
            },
        ),
        (
            Hand::default(),
            DecodeError::BadPort {
                field: "store host",
                port: -1,
            },
        ),
    ];
    for (i, (hand, expected)) in cases.into_iter().enumerate() {
        let mut bytes = hand.build();
        if i == 3 {
            bytes[52..56].copy_from_slice(&65536i32.to_be_bytes());
        }
        if i == 4 {
            bytes[68..72].copy_from_slice(&(-1i32).to_be_bytes());
        }
        assert_eq!(decode(&bytes, Verify::Framing).unwrap_err(), expected);
    }
}

#[test]
fn a_frame_followed_by_more_bytes() {
    let topic = vec![b'x'; 200];
    let mut log = golden_a();
    log.extend_from_slice(&golden_b_hand(&topic).build());
    log.extend_from_slice(&encode_blank(50));
    log.resize(log.len() + 42, 0);
    let a = record(decode(&log, Verify::RequireRecordCrc).unwrap());
    assert_eq!(a.topic, "TopicTest");
    let b = record(decode(&log[160..], Verify::RequireRecordCrc).unwrap());
    assert_eq!(b.topic.len(), 200);
    assert!(matches!(
        decode(&log[500..], Verify::RequireRecordCrc),
        Ok(Frame::Blank { len: 50 })
    ));
}

#[test]
fn errors_display() {
    assert_eq!(
        DecodeError::RecordCrcMismatch { stored: 1, computed: 2 }.to_string(),
        "record CRC mismatch: stored 0x00000001, computed 0x00000002"
    );
    assert_eq!(
        DecodeError::Truncated { need: 8, have: 3 }.to_string(),
        "truncated frame: 8 bytes needed, 3 available"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties of arbitrary inputs.

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
    ]
}

fn arb_topic() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z0-9_%|-]{1,127}", "[a-z]{128,400}", "\\PC{1,60}",]
}

/// Pairs without separators (`\PC` excludes control characters), never the CRC key.
fn arb_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[A-Za-z_]{1,12}", "\\PC{0,20}"), 0..8)
}

#[derive(Debug, Clone)]
struct Case {
    topic: String,
    queue_id: u32,
    flag: i32,
    sys_flag: i32,
    born_timestamp: i64,
    born_host: SocketAddr,
    store_host: SocketAddr,
    reconsume_times: i32,
    prepared_transaction_offset: i64,
    body: Vec<u8>,
    pairs: Vec<(String, String)>,
    unterminated_tail: bool,
    queue_offset: u64,
    physical_offset: u64,
    store_timestamp: u64,
}

fn arb_case() -> impl Strategy<Value = Case> {
    (
        (
            arb_topic(),
            0..=i32::MAX as u32,
            any::<i32>(),
            any::<i32>(),
            any::<i64>(),
            arb_addr(),
            arb_addr(),
            any::<i32>(),
        ),
        (
            any::<i64>(),
            prop::collection::vec(any::<u8>(), 0..600),
            arb_pairs(),
            any::<bool>(),
            0..=i64::MAX as u64,
            0..=i64::MAX as u64,
            0..=i64::MAX as u64,
        ),
    )
        .prop_map(
            |(
                (topic, queue_id, flag, sys_flag, born_timestamp, born_host, store_host, reconsume),
                (prepared, body, pairs, unterminated_tail, qo, po, ts),
            )| Case {
                topic,
                queue_id,
                flag,
                sys_flag,
                born_timestamp,
                born_host,
                store_host,
                reconsume_times: reconsume,
                prepared_transaction_offset: prepared,
                body,
                pairs,
                unterminated_tail,
                queue_offset: qo,
                physical_offset: po,
                store_timestamp: ts,
            },
        )
}

impl Case {
    fn properties(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_properties(self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), &mut out).unwrap();
        if self.unterminated_tail {
            // As RocketMQ clients may leave it: the last pair without its 0x02.
            out.extend_from_slice(b"tail\x01end");
        }
        out
    }

    fn spec<'a>(&'a self, properties: &'a [u8]) -> RecordSpec<'a> {
        RecordSpec {
            topic: &self.topic,
            queue_id: self.queue_id,
            flag: self.flag,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            store_host: self.store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
            body: &self.body,
            properties,
        }
    }

    fn sealed(&self) -> Vec<u8> {
        let props = self.properties();
        let mut rec = EncodedRecord::encode(&self.spec(&props)).unwrap();
        rec.seal(self.queue_offset, self.physical_offset, self.store_timestamp);
        rec.into_vec()
    }
}

fn arb_verify() -> impl Strategy<Value = Verify> {
    prop_oneof![Just(Verify::Framing), Just(Verify::Crc), Just(Verify::RequireRecordCrc)]
}

proptest! {
    #[test]
    fn encode_seal_decode_round_trips(case in arb_case()) {
        let props = case.properties();
        let spec = case.spec(&props);
        let mut rec = EncodedRecord::encode(&spec).unwrap();
        rec.seal(case.queue_offset, case.physical_offset, case.store_timestamp);
        let bytes = rec.as_bytes();
        let r = record(decode(bytes, Verify::RequireRecordCrc).unwrap());

        prop_assert_eq!(r.total_size as usize, bytes.len());
        let v2 = case.topic.len() > 127;
        prop_assert_eq!(r.magic, if v2 { MAGIC_V2 } else { MAGIC_V1 });
        prop_assert_eq!(r.body_crc, masked(&case.body));
        prop_assert_eq!(r.body_crc, rec.body_crc());
        prop_assert_eq!(r.queue_id, case.queue_id);
        prop_assert_eq!(r.flag, case.flag);
        prop_assert_eq!(r.queue_offset, case.queue_offset);
        prop_assert_eq!(r.physical_offset, case.physical_offset);
        let mut sys_flag = case.sys_flag & !(BORNHOST_V6 | STOREHOST_V6);
        if case.born_host.is_ipv6() { sys_flag |= BORNHOST_V6; }
        if case.store_host.is_ipv6() { sys_flag |= STOREHOST_V6; }
        prop_assert_eq!(r.sys_flag, sys_flag);
        prop_assert_eq!(r.born_timestamp, case.born_timestamp);
        prop_assert_eq!(r.born_host, case.born_host);
        prop_assert_eq!(r.store_timestamp, case.store_timestamp as i64);
        prop_assert_eq!(r.store_host, case.store_host);
        prop_assert_eq!(r.reconsume_times, case.reconsume_times);
        prop_assert_eq!(r.prepared_transaction_offset, case.prepared_transaction_offset);
        prop_assert_eq!(r.body, case.body.as_slice());
        prop_assert_eq!(r.topic, case.topic.as_str());
        prop_assert_eq!(&bytes[r.body_offset as usize..][..case.body.len()], case.body.as_slice());
        prop_assert_eq!(&bytes[r.topic_offset as usize..][..case.topic.len()], case.topic.as_bytes());
        prop_assert_eq!(&r.properties.as_bytes()[..props.len()], props.as_slice());
        prop_assert!(r.has_record_crc());
        // The record CRC, computed directly over [0, len - 20).
        let crc = masked(&bytes[..bytes.len() - 20]);
        let digits: String = format!("{crc:010}").chars().rev().collect();
        prop_assert_eq!(r.property(CRC_PROPERTY_KEY), Some(digits.as_str()));

        let mut expected: Vec<(&str, &str)> = case.pairs.iter()
            .filter(|(k, v)| !v.is_empty() && k != PROPERTY_TAGS && k != PROPERTY_KEYS)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if case.unterminated_tail { expected.push(("tail", "end")); }
        prop_assert_eq!(r.user_properties().collect::<Vec<_>>(), expected);

        // Reusing a buffer gives the same bytes.
        let mut again = EncodedRecord::encode_into(&spec, vec![0xAB; 77]).unwrap();
        again.seal(case.queue_offset, case.physical_offset, case.store_timestamp);
        prop_assert_eq!(again.as_bytes(), bytes);
    }

    #[test]
    fn decode_of_arbitrary_bytes_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        verify in arb_verify(),
    ) {
        let _ = decode(&bytes, verify);
        let _ = peek_header(&bytes);
    }

    #[test]
    fn decode_of_arbitrary_bytes_behind_a_plausible_header_never_panics(
        mut bytes in prop::collection::vec(any::<u8>(), 8..400),
        magic in prop_oneof![Just(MAGIC_V1), Just(MAGIC_V2), Just(MAGIC_BLANK)],
        verify in arb_verify(),
    ) {
        let len = bytes.len() as i32;
        bytes[..4].copy_from_slice(&len.to_be_bytes());
        bytes[4..8].copy_from_slice(&magic.to_be_bytes());
        let _ = decode(&bytes, verify);
    }

    #[test]
    fn any_damage_to_a_sealed_record_is_an_error_never_a_panic(
        case in arb_case(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4),
        cut in any::<prop::sample::Index>(),
        total in any::<i32>(),
        verify in arb_verify(),
    ) {
        let sealed = case.sealed();
        let mut damaged = sealed.clone();
        for (at, x) in &edits {
            damaged[at.index(sealed.len())] ^= x;
        }
        if damaged != sealed {
            prop_assert!(decode(&damaged, Verify::RequireRecordCrc).is_err());
        }
        let _ = decode(&damaged, verify);
        let _ = decode(&sealed[..cut.index(sealed.len())], verify);
        let _ = decode(&with_total_size(&sealed, total), verify);
    }

    #[test]
    fn properties_round_trip(pairs in arb_pairs()) {
        let mut blob = Vec::new();
        encode_properties(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), &mut blob).unwrap();
        let blob = String::from_utf8(blob).unwrap();
        let expected: Vec<(&str, &str)> = pairs.iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        prop_assert_eq!(properties(&blob).collect::<Vec<_>>(), expected);
    }

    #[test]
    fn offset_msg_id_round_trips(host in arb_addr(), offset in 0..=i64::MAX as u64) {
        let id = offset_msg_id(host, offset);
        prop_assert_eq!(id.len(), if host.is_ipv4() { 32 } else { 56 });
        prop_assert_eq!(parse_offset_msg_id(&id), Some((host, offset)));
        prop_assert_eq!(parse_offset_msg_id(&id.to_lowercase()), Some((host, offset)));
    }

    #[test]
    fn java_hash_matches_the_utf16_definition(s in "\\PC{0,40}") {
        // Surrogates computed by hand from the scalar values, arithmetic in i64 then wrapped.
        let mut h: i64 = 0;
        for c in s.chars() {
            let c = u32::from(c);
            let units = if c >= 0x1_0000 {
                vec![0xD800 + ((c - 0x1_0000) >> 10), 0xDC00 + ((c - 0x1_0000) & 0x3FF)]
            } else {
                vec![c]
            };
            for unit in units {
                h = (h * 31 + i64::from(unit)) % (1 << 32);
            }
        }
        prop_assert_eq!(java_hash(&s), h as u32 as i32);
    }
}
