#include "flat_json.h"

#include <cctype>
#include <charconv>

namespace dlb::apptest {

namespace {

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}

  std::optional<FlatJson> Object(std::string* error) {
    FlatJson out;
    if (!Eat('{')) return Fail(error, "expected '{'");
    if (!Eat('}')) {
      do {
        std::string key;
        if (!String(&key)) return Fail(error, "expected a string key");
        if (!Eat(':')) return Fail(error, "expected ':'");
        JsonValue v;
        if (!Value(&v)) return Fail(error, "bad value of '" + key + "'");
        if (!out.emplace(key, v).second) return Fail(error, "duplicate key '" + key + "'");
      } while (Eat(','));
      if (!Eat('}')) return Fail(error, "expected ',' or '}'");
    }
    if (!Eat('\n') || i_ != s_.size()) return Fail(error, "expected exactly one line");
    return out;
  }

 private:
  std::optional<FlatJson> Fail(std::string* error, const std::string& what) {
    if (error != nullptr) *error = what + " at offset " + std::to_string(i_);
    return std::nullopt;
  }

  bool Eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }

  bool Value(JsonValue* v) {
    if (i_ < s_.size() && s_[i_] == '"') {
      v->type = JsonValue::Type::kString;
      return String(&v->str);
    }
    for (auto [word, type, b] : {std::tuple{"true", JsonValue::Type::kBool, true},
                                 std::tuple{"false", JsonValue::Type::kBool, false},
                                 std::tuple{"null", JsonValue::Type::kNull, false}}) {
      if (s_.substr(i_, std::string_view(word).size()) == word) {
        i_ += std::string_view(word).size();
        v->type = type;
        v->boolean = b;
        return true;
      }
    }
    // JSON numbers: -?digits[.digits][e[+-]digits]; from_chars accepts a superset
    // (inf, nan), so check the first character first.
    if (i_ >= s_.size() || !(s_[i_] == '-' || std::isdigit(static_cast<unsigned char>(s_[i_])))) {
      return false;
    }
    auto [p, ec] = std::from_chars(s_.data() + i_, s_.data() + s_.size(), v->number);
    if (ec != std::errc()) return false;
    i_ = static_cast<size_t>(p - s_.data());
    v->type = JsonValue::Type::kNumber;
    return true;
  }

  static void AppendUtf8(unsigned cp, std::string* out) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xC0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      *out += static_cast<char>(0xE0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  bool String(std::string* out) {
    if (!Eat('"')) return false;
    while (i_ < s_.size()) {
      const unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;  // control characters must be escaped
      if (c != '\\') {
        *out += static_cast<char>(c);
        continue;
      }
      if (i_ >= s_.size()) return false;
      switch (s_[i_++]) {
        case '"': *out += '"'; break;
        case '\\': *out += '\\'; break;
        case '/': *out += '/'; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'n': *out += '\n'; break;
        case 'r': *out += '\r'; break;
        case 't': *out += '\t'; break;
        case 'u': {
          unsigned cp = 0;
          if (i_ + 4 > s_.size()) return false;
          auto [p, ec] = std::from_chars(s_.data() + i_, s_.data() + i_ + 4, cp, 16);
          if (ec != std::errc() || p != s_.data() + i_ + 4) return false;
          i_ += 4;
          AppendUtf8(cp, out);
          break;
        }
        default: return false;
      }
    }
    return false;
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

std::optional<FlatJson> ParseFlatJsonLine(std::string_view text, std::string* error) {
  return Reader(text).Object(error);
}

}  // namespace dlb::apptest
