#include "control/feed.h"

#include "identity/strutil.h"

namespace meshgate::control {

void AppendFrame(const google::protobuf::MessageLite& u, std::string& out) {
  size_t n = u.ByteSizeLong();
  uint64_t v = n;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    out.push_back(char(v ? (b | 0x80) : b));
  } while (v);
  size_t at = out.size();
  out.resize(at + n);
  u.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out.data() + at));
}

std::string EncodeFrame(const google::protobuf::MessageLite& u) {
  std::string s;
  AppendFrame(u, s);
  return s;
}

void FrameDecoder::Feed(std::string_view bytes) {
  if (!error_.ok()) return;
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > (1u << 16) && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

absl::StatusOr<bool> FrameDecoder::Next(google::protobuf::MessageLite& out) {
  if (!error_.ok()) return error_;
  // The length prefix: at most 5 varint bytes for a 32-bit count.
  uint64_t len = 0;
  size_t i = pos_;
  int shift = 0;
  for (;; ++i, shift += 7) {
    if (i == buf_.size()) return false;
    if (shift > 28) {
      error_ = absl::InvalidArgumentError(
          StrCat("mesh feed frame ", frames_ + 1, ": length prefix is not a valid varint"));
      return error_;
    }
    uint8_t b = uint8_t(buf_[i]);
    len |= uint64_t(b & 0x7f) << shift;
    if (!(b & 0x80)) break;
  }
  ++i;
  if (len > max_frame_) {
    error_ = absl::ResourceExhaustedError(StrCat("mesh feed frame ", frames_ + 1, ": ", len,
                                                 " bytes exceeds the limit of ", max_frame_));
    return error_;
  }
  if (buf_.size() - i < len) return false;
  out.Clear();
  if (!out.ParseFromArray(buf_.data() + i, int(len))) {
    error_ = absl::InvalidArgumentError(
        StrCat("mesh feed frame ", frames_ + 1, ": not a ", out.GetTypeName(), " (", len,
               " bytes)"));
    return error_;
  }
  pos_ = i + len;
  ++frames_;
  return true;
}

}  // namespace meshgate::control
