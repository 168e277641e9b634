// Unit tests of dag::pki (src/common/pki.cpp). They live in broker_test because the PKI
// exists for the broker's mutual TLS; acl_test proves the same files against mosquitto.
#include "dag/common/pki.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>

#include "dag/test/temp_dir.hpp"

namespace dag::pki {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

CertificateAuthority make_ca() {
  auto ca = create_ca();
  EXPECT_TRUE(ca) << ca.error().message;
  return ca ? *ca : CertificateAuthority{};
}

TEST(PkiTest, GeneratesP256KeysAsPkcs8Pem) {
  auto key = generate_key();
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_NE(key->find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  auto pub = public_key_of(*key);
  ASSERT_TRUE(pub) << pub.error().message;
  EXPECT_NE(pub->find("-----BEGIN PUBLIC KEY-----"), std::string::npos);
  auto other = generate_key();
  ASSERT_TRUE(other);
  EXPECT_NE(*key, *other);
}

TEST(PkiTest, CaIsSelfSignedCaWithRequestedValidity) {
  CaOptions options;
  options.common_name = "unit CA";
  options.validity = {hours{24 * 365 * 10}, seconds{0}};
  auto ca = create_ca(options);
  ASSERT_TRUE(ca) << ca.error().message;
  auto info = inspect_certificate(ca->cert_pem);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_TRUE(info->is_ca);
  EXPECT_EQ(info->subject_cn, "unit CA");
  EXPECT_EQ(info->issuer_cn, "unit CA");
  EXPECT_EQ(std::chrono::duration_cast<hours>(info->not_after - info->not_before).count(),
            24 * 365 * 10);
  EXPECT_TRUE(verify_certificate(ca->cert_pem, ca->cert_pem));
  auto match = key_matches_certificate(ca->key_pem, ca->cert_pem);
  ASSERT_TRUE(match);
  EXPECT_TRUE(*match);
}

TEST(PkiTest, ServerCertificateCarriesSansAndVerifies) {
  const auto ca = make_ca();
  auto server = issue_server_certificate(ca);
  ASSERT_TRUE(server) << server.error().message;
  auto info = inspect_certificate(server->cert_pem);
  ASSERT_TRUE(info);
  EXPECT_FALSE(info->is_ca);
  EXPECT_EQ(info->dns_names, std::vector<std::string>{"localhost"});
  EXPECT_EQ(info->ip_addresses, std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(info->issuer_cn, "detectordag CA");
  EXPECT_TRUE(verify_certificate(ca.cert_pem, server->cert_pem));
  auto match = key_matches_certificate(server->key_pem, server->cert_pem);
  ASSERT_TRUE(match);
  EXPECT_TRUE(*match);
}

TEST(PkiTest, ServerCertificateRejectsBadSans) {
  const auto ca = make_ca();
  ServerOptions bad_ip;
  bad_ip.ip_addresses = {"300.1.1.1"};
  EXPECT_EQ(issue_server_certificate(ca, bad_ip).error().code, Errc::invalid_argument);
  ServerOptions injected;
  injected.dns_names = {"localhost,IP:10.0.0.1"};
  EXPECT_EQ(issue_server_certificate(ca, injected).error().code, Errc::invalid_argument);
  ServerOptions none;
  none.dns_names.clear();
  none.ip_addresses.clear();
  EXPECT_EQ(issue_server_certificate(ca, none).error().code, Errc::invalid_argument);
}

TEST(PkiTest, ClientCertificateHasIdentityAsCnAndRandom128BitSerial) {
  const auto ca = make_ca();
  auto a = issue_client_certificate(ca, "dev-a");
  auto b = issue_client_certificate(ca, "dev-a");
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_TRUE(b);
  auto info = inspect_certificate(a->cert_pem);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->subject_cn, "dev-a");
  EXPECT_EQ(info->serial_hex, a->serial_hex);
  EXPECT_LE(a->serial_hex.size(), 34U);  // 128 bits (+ a sign byte at most)
  EXPECT_GE(a->serial_hex.size(), 28U);  // leading zero bytes are rare, never 3 of them
  EXPECT_NE(a->serial_hex, b->serial_hex);
  EXPECT_TRUE(verify_certificate(ca.cert_pem, a->cert_pem));
}

TEST(PkiTest, RejectsIdentitiesThatWouldEscapeTheirTopicLevel) {
  for (const char* bad : {"", "a/b", "a+b", "#", "$aws", "a b", "-lead", ".lead", "a\nb"}) {
    EXPECT_FALSE(is_valid_identity(bad)) << bad;
  }
  for (const char* good : {"dev-a", "dagd", "b827eb0a1b2c", "Dag_1.2"}) {
    EXPECT_TRUE(is_valid_identity(good)) << good;
  }
  EXPECT_FALSE(is_valid_identity(std::string(129, 'a')));
  const auto ca = make_ca();
  EXPECT_EQ(issue_client_certificate(ca, "a/#").error().code, Errc::invalid_argument);
}

TEST(PkiTest, CertificateFromAnotherCaDoesNotVerify) {
  const auto ca = make_ca();
  const auto other = make_ca();
  auto cert = issue_client_certificate(other, "dev-a");
  ASSERT_TRUE(cert);
  auto v = verify_certificate(ca.cert_pem, cert->cert_pem);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, Errc::crypto);
}

TEST(PkiTest, ExpiredCertificateDoesNotVerify) {
  const auto ca = make_ca();
  auto cert = issue_client_certificate(ca, "dev-a", Validity{seconds{1}, hours{1}});
  ASSERT_TRUE(cert);
  auto v = verify_certificate(ca.cert_pem, cert->cert_pem);
  ASSERT_FALSE(v);
  EXPECT_NE(v.error().message.find("expired"), std::string::npos) << v.error().message;
}

TEST(PkiTest, CsrKeepsThePrivateKeyWithTheDevice) {
  const auto ca = make_ca();
  auto key = generate_key();
  ASSERT_TRUE(key);
  auto csr = create_csr(*key, "dev-a");
  ASSERT_TRUE(csr) << csr.error().message;
  EXPECT_NE(csr->find("BEGIN CERTIFICATE REQUEST"), std::string::npos);
  auto id = csr_identity(*csr);
  ASSERT_TRUE(id);
  EXPECT_EQ(*id, "dev-a");

  SignOptions options;
  options.expected_identity = "dev-a";
  auto cert = sign_csr(ca, *csr, options);
  ASSERT_TRUE(cert) << cert.error().message;
  EXPECT_TRUE(cert->key_pem.empty());
  auto match = key_matches_certificate(*key, cert->cert_pem);
  ASSERT_TRUE(match);
  EXPECT_TRUE(*match);
  EXPECT_TRUE(verify_certificate(ca.cert_pem, cert->cert_pem));
  auto info = inspect_certificate(cert->cert_pem);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->subject_cn, "dev-a");
}

TEST(PkiTest, SignCsrRefusesTheWrongIdentityAndTamperedRequests) {
  const auto ca = make_ca();
  auto key = generate_key();
  ASSERT_TRUE(key);
  auto csr = create_csr(*key, "dev-a");
  ASSERT_TRUE(csr);
  SignOptions options;
  options.expected_identity = "dev-b";
  EXPECT_EQ(sign_csr(ca, *csr, options).error().code, Errc::invalid_argument);

  // Flip one character of the base64 body: the signature (or the DER) no longer holds.
  std::string tampered = *csr;
  const auto pos = tampered.find('\n', tampered.find("REQUEST-----")) + 40;
  tampered[pos] = tampered[pos] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(sign_csr(ca, tampered));
  EXPECT_EQ(sign_csr(ca, "not a csr").error().code, Errc::parse);
}

TEST(PkiTest, CrlRevokesExactlyTheGivenSerials) {
  const auto ca = make_ca();
  auto a = issue_client_certificate(ca, "dev-a");
  auto b = issue_client_certificate(ca, "dev-b");
  ASSERT_TRUE(a && b);
  auto empty = create_crl(ca);
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_TRUE(verify_certificate(ca.cert_pem, a->cert_pem, *empty));

  CrlOptions options;
  std::string lower = a->serial_hex;
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  options.revoked_serials = {lower};  // case does not matter
  options.crl_number = 2;
  auto crl = create_crl(ca, options);
  ASSERT_TRUE(crl) << crl.error().message;
  auto va = verify_certificate(ca.cert_pem, a->cert_pem, *crl);
  ASSERT_FALSE(va);
  EXPECT_NE(va.error().message.find("revoked"), std::string::npos) << va.error().message;
  EXPECT_TRUE(verify_certificate(ca.cert_pem, b->cert_pem, *crl));

  CrlOptions bad;
  bad.revoked_serials = {"xyz"};
  EXPECT_EQ(create_crl(ca, bad).error().code, Errc::invalid_argument);
}

TEST(PkiTest, SigningWithAMismatchedCaKeyFails) {
  auto ca = make_ca();
  auto other = make_ca();
  ca.key_pem = other.key_pem;
  EXPECT_EQ(issue_client_certificate(ca, "dev-a").error().code, Errc::invalid_argument);
}

TEST(PkiTest, WritesFilesWithTheRequestedModeAndReadsThemBack) {
  dag::test::TempDir dir;
  auto key = generate_key();
  ASSERT_TRUE(key);
  const auto key_path = dir / "device.key";
  ASSERT_TRUE(write_pem_file(key_path, *key, kOwnerOnly));
  struct stat st {};
  ASSERT_EQ(::stat(key_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777U, 0600U);

  const auto shared = dir / "broker.key";
  ASSERT_TRUE(write_pem_file(shared, *key, kSharedReadable));
  ASSERT_EQ(::stat(shared.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777U, 0644U);

  // Overwriting keeps the new mode (rename replaces the file).
  ASSERT_TRUE(write_pem_file(shared, *key, kOwnerOnly));
  ASSERT_EQ(::stat(shared.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777U, 0600U);

  auto back = read_pem_file(key_path);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, *key);
  EXPECT_EQ(read_pem_file(dir / "missing.pem").error().code, Errc::not_found);
  EXPECT_EQ(write_pem_file(dir / "no-such-dir" / "x.pem", *key, kOwnerOnly).error().code, Errc::io);
}

TEST(PkiTest, ParseErrorsAreReportedNotThrown) {
  EXPECT_EQ(public_key_of("garbage").error().code, Errc::parse);
  EXPECT_EQ(inspect_certificate("").error().code, Errc::parse);
  EXPECT_EQ(create_csr("garbage", "dev-a").error().code, Errc::parse);
  EXPECT_EQ(verify_certificate("x", "y").error().code, Errc::parse);
}

}  // namespace
}  // namespace dag::pki
