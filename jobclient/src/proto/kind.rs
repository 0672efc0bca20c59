//! Packet types and magic codes, numbered as in gearmand's `PROTOCOL` and `protocol.h`.

/// Whether a packet is a request (to the server) or a response (from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Magic {
    /// `\0REQ`.
    Req,
    /// `\0RES`.
    Res,
}

impl Magic {
    /// The four bytes on the wire.
    pub const fn bytes(self) -> [u8; 4] {
        match self {
            Magic::Req => *b"\0REQ",
            Magic::Res => *b"\0RES",
        }
    }

    /// Parses the four magic bytes.
    pub fn from_bytes(b: [u8; 4]) -> Option<Magic> {
        match &b {
            b"\0REQ" => Some(Magic::Req),
            b"\0RES" => Some(Magic::Res),
            _ => None,
        }
    }
}

macro_rules! packet_types {
    ($($name:ident = $code:literal, $args:literal;)*) => {
        /// Every packet type of the protocol, with its number on the wire.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum PacketType {
            $(
                #[doc = concat!("`", stringify!($name), "` (", stringify!($code), ").")]
                $name,
            )*
        }

        impl PacketType {
            /// The number on the wire.
            pub const fn code(self) -> u32 {
                match self { $(PacketType::$name => $code,)* }
            }

            /// The packet type with this number, if any.
            pub const fn from_code(code: u32) -> Option<PacketType> {
                match code { $($code => Some(PacketType::$name),)* _ => None }
            }

            /// How many arguments the body holds: all but the last are NUL-terminated, the last
            /// runs to the end of the body.
            pub const fn arg_count(self) -> usize {
                match self { $(PacketType::$name => $args,)* }
            }
        }
    };
}

packet_types! {
    CanDo = 1, 1;
    CantDo = 2, 1;
    ResetAbilities = 3, 0;
    PreSleep = 4, 0;
    Noop = 6, 0;
    SubmitJob = 7, 3;
    JobCreated = 8, 1;
    GrabJob = 9, 0;
    NoJob = 10, 0;
    JobAssign = 11, 3;
    WorkStatus = 12, 3;
    WorkComplete = 13, 2;
    WorkFail = 14, 1;
    GetStatus = 15, 1;
    EchoReq = 16, 1;
    EchoRes = 17, 1;
    SubmitJobBg = 18, 3;
    Error = 19, 2;
    StatusRes = 20, 5;
    SubmitJobHigh = 21, 3;
    SetClientId = 22, 1;
    CanDoTimeout = 23, 2;
    AllYours = 24, 0;
    WorkException = 25, 2;
    OptionReq = 26, 1;
    OptionRes = 27, 1;
    WorkData = 28, 2;
    WorkWarning = 29, 2;
    GrabJobUniq = 30, 0;
    JobAssignUniq = 31, 4;
    SubmitJobHighBg = 32, 3;
    SubmitJobLow = 33, 3;
    SubmitJobLowBg = 34, 3;
    SubmitJobSched = 35, 8;
    SubmitJobEpoch = 36, 4;
    // function, unique, reducer, aggregator, data (measured against gearmand 1.1.20).
    SubmitReduceJob = 37, 5;
    SubmitReduceJobBackground = 38, 5;
    GrabJobAll = 39, 0;
    JobAssignAll = 40, 5;
    GetStatusUnique = 41, 1;
    StatusResUnique = 42, 6;
}
