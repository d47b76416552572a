// The mesh feed's framing: each frame is a varint byte count (protobuf's
// length-delimited form, as writeDelimitedTo) followed by one
// meshgate.mesh.v1.Update. The decoder is incremental (bytes arrive in any
// split from a socket) and refuses, without reading further, a frame larger
// than its limit or a length prefix that is not a valid varint; a frame that
// does not parse as an Update is an error too. After an error the stream is
// unusable (the peer is disconnected); the state already applied stays.
//
// Thread-safety: a decoder belongs to one connection.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include <google/protobuf/message_lite.h>

#include "control/proto/mesh.pb.h"

namespace meshgate::control {

inline constexpr uint32_t kProtocolVersion = 1;
inline constexpr size_t kDefaultMaxFrame = 4u << 20;  // 4 MiB

// Appends one frame holding `m` to `out`. (The admin API uses the same
// framing for its own messages.)
void AppendFrame(const google::protobuf::MessageLite& m, std::string& out);
std::string EncodeFrame(const google::protobuf::MessageLite& m);

class FrameDecoder {
 public:
  explicit FrameDecoder(size_t max_frame = kDefaultMaxFrame) : max_frame_(max_frame) {}

  void Feed(std::string_view bytes);
  // true: `out` holds the next update; false: more bytes are needed;
  // an error: the stream is broken (sticky).
  absl::StatusOr<bool> Next(google::protobuf::MessageLite& out);
  size_t buffered() const { return buf_.size() - pos_; }
  uint64_t frames() const { return frames_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
  size_t max_frame_;
  uint64_t frames_ = 0;
  absl::Status error_;
};

}  // namespace meshgate::control
