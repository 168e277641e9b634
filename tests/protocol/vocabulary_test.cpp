#include "dag/protocol/vocabulary.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace dag::protocol {
namespace {

using nlohmann::json;

TEST(Vocabulary, PowerAndConnectionTextRoundTripsAndRejectsUnknownText) {
  EXPECT_EQ(to_string(Power::on), "on");
  EXPECT_EQ(to_string(Power::off), "off");
  EXPECT_EQ(parse_power("on"), Power::on);
  EXPECT_EQ(parse_power("off"), Power::off);
  for (std::string_view bad : {"", "ON", "On", "true", "1", "on "}) {
    EXPECT_EQ(parse_power(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(to_string(Connection::connected), "connected");
  EXPECT_EQ(parse_connection("disconnected"), Connection::disconnected);
  EXPECT_EQ(parse_connection("Connected"), std::nullopt);
  EXPECT_EQ(parse_connection("online"), std::nullopt);
}

TEST(Vocabulary, UserStatesHaveNamesTitlesAndExplanations) {
  EXPECT_EQ(title(UserState::on), "On");
  EXPECT_EQ(title(UserState::off), "Off");
  EXPECT_EQ(title(UserState::was_on), "Was On");
  EXPECT_EQ(title(UserState::was_off), "Was Off");
  for (UserState state : kAllUserStates) {
    EXPECT_EQ(parse_user_state(to_string(state)), state);
    EXPECT_FALSE(explanation(state).empty());
  }
  EXPECT_EQ(to_string(UserState::was_off), "was_off");
  EXPECT_EQ(parse_user_state("Was On"), std::nullopt);  // titles are not machine names
  EXPECT_EQ(parse_user_state("unknown"), std::nullopt);
}

TEST(Vocabulary, UserStateFromPowerAndConnection) {
  EXPECT_EQ(user_state(Power::on, Connection::connected), UserState::on);
  EXPECT_EQ(user_state(Power::off, Connection::connected), UserState::off);
  EXPECT_EQ(user_state(Power::on, Connection::disconnected), UserState::was_on);
  EXPECT_EQ(user_state(Power::off, Connection::disconnected), UserState::was_off);
  for (UserState state : kAllUserStates) {
    EXPECT_EQ(user_state(power_of(state), connection_of(state)), state);
  }
}

TEST(Vocabulary, EventSubjectsAreTheOriginalEmailSubjects) {
  EXPECT_EQ(subject(Event::power_lost), "You've lost power!");
  EXPECT_EQ(subject(Event::power_back), "Your power's back!");
  EXPECT_EQ(subject(Event::contact_lost), "We've lost contact with your dag!");
  EXPECT_EQ(subject(Event::dag_back), "Your dag is back!");
  for (Event event : {Event::power_lost, Event::power_back, Event::contact_lost, Event::dag_back}) {
    EXPECT_EQ(parse_event(to_string(event)), event);
  }
  EXPECT_EQ(parse_event("power lost"), std::nullopt);
}

TEST(Vocabulary, TransitionTable) {
  using U = UserState;
  using E = Event;
  struct Row {
    U from;
    U to;
    std::optional<E> event;
  };
  const Row table[] = {
      {U::on, U::on, std::nullopt},           {U::on, U::off, E::power_lost},
      {U::on, U::was_on, E::contact_lost},    {U::on, U::was_off, E::power_lost},
      {U::off, U::on, E::power_back},         {U::off, U::off, std::nullopt},
      {U::off, U::was_on, E::power_back},     {U::off, U::was_off, E::contact_lost},
      {U::was_on, U::on, E::dag_back},        {U::was_on, U::off, E::power_lost},
      {U::was_on, U::was_on, std::nullopt},   {U::was_on, U::was_off, E::power_lost},
      {U::was_off, U::on, E::power_back},     {U::was_off, U::off, E::dag_back},
      {U::was_off, U::was_on, E::power_back}, {U::was_off, U::was_off, std::nullopt},
  };
  for (const Row& row : table) {
    EXPECT_EQ(transition_event(row.from, row.to), row.event)
        << to_string(row.from) << " -> " << to_string(row.to);
  }
}

TEST(LifecycleEvents, ParsesAConnectedEvent) {
  auto event = parse_lifecycle_event(R"({
    "clientId": "dag-1", "timestamp": 1700000000123, "eventType": "connected",
    "sessionIdentifier": "00000000-0000-0000-0000-000000000000",
    "principalIdentifier": "12345678901234567890123456789012",
    "ipAddress": "192.0.2.1", "versionNumber": 3, "someFutureField": [1]})");
  ASSERT_TRUE(event.has_value()) << event.error().message;
  LifecycleEvent expected;
  expected.client_id = "dag-1";
  expected.timestamp_ms = 1700000000123;
  expected.event_type = Connection::connected;
  expected.session_identifier = "00000000-0000-0000-0000-000000000000";
  expected.principal_identifier = "12345678901234567890123456789012";
  expected.ip_address = "192.0.2.1";
  expected.version_number = 3;
  EXPECT_EQ(*event, expected);
}

TEST(LifecycleEvents, ParsesADisconnectedEvent) {
  auto event = parse_lifecycle_event(R"({
    "clientId": "dag-1", "timestamp": 1700000000999, "eventType": "disconnected",
    "sessionIdentifier": "s-1", "principalIdentifier": "p-1",
    "clientInitiatedDisconnect": false, "disconnectReason": "MQTT_KEEP_ALIVE_TIMEOUT",
    "versionNumber": 4})");
  ASSERT_TRUE(event.has_value()) << event.error().message;
  EXPECT_EQ(event->event_type, Connection::disconnected);
  EXPECT_EQ(event->client_initiated_disconnect, false);
  EXPECT_EQ(event->disconnect_reason, "MQTT_KEEP_ALIVE_TIMEOUT");
  EXPECT_EQ(event->version_number, 4);
  EXPECT_EQ(event->ip_address, std::nullopt);
}

TEST(LifecycleEvents, BuildsTheAwsPayload) {
  LifecycleEvent event;
  event.client_id = "dag-1";
  event.timestamp_ms = 1700000000999;
  event.event_type = Connection::disconnected;
  event.session_identifier = "s-1";
  event.principal_identifier = "p-1";
  event.version_number = 4;
  event.client_initiated_disconnect = true;
  event.disconnect_reason = "CLIENT_INITIATED_DISCONNECT";
  EXPECT_EQ(json::parse(to_json(event)), json::parse(R"({
    "clientId": "dag-1", "timestamp": 1700000000999, "eventType": "disconnected",
    "sessionIdentifier": "s-1", "principalIdentifier": "p-1", "versionNumber": 4,
    "clientInitiatedDisconnect": true, "disconnectReason": "CLIENT_INITIATED_DISCONNECT"})"));
  auto back = parse_lifecycle_event(to_json(event));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, event);

  // Disconnect-only fields never appear on a connected event.
  event.event_type = Connection::connected;
  json connected = json::parse(to_json(event));
  EXPECT_FALSE(connected.contains("clientInitiatedDisconnect"));
  EXPECT_FALSE(connected.contains("disconnectReason"));
  EXPECT_EQ(connected["eventType"], "connected");
}

TEST(LifecycleEvents, RejectsBadInputWithoutThrowing) {
  constexpr std::string_view kValid =
      R"({"clientId":"dag-1","timestamp":1,"eventType":"connected",)"
      R"("sessionIdentifier":"s","principalIdentifier":"p","versionNumber":0})";
  ASSERT_TRUE(parse_lifecycle_event(kValid).has_value());
  for (std::string_view bad : {
           "",
           "not json",
           "[]",
           "\xff",
           R"({"timestamp":1,"eventType":"connected","sessionIdentifier":"s",
               "principalIdentifier":"p","versionNumber":0})",
           R"({"clientId":"a/b","timestamp":1,"eventType":"connected","sessionIdentifier":"s",
               "principalIdentifier":"p","versionNumber":0})",
           R"({"clientId":"d","timestamp":-1,"eventType":"connected","sessionIdentifier":"s",
               "principalIdentifier":"p","versionNumber":0})",
           R"({"clientId":"d","timestamp":1.5,"eventType":"connected","sessionIdentifier":"s",
               "principalIdentifier":"p","versionNumber":0})",
           R"({"clientId":"d","timestamp":1,"eventType":"online","sessionIdentifier":"s",
               "principalIdentifier":"p","versionNumber":0})",
           R"({"clientId":"d","timestamp":1,"eventType":"connected","sessionIdentifier":5,
               "principalIdentifier":"p","versionNumber":0})",
           R"({"clientId":"d","timestamp":1,"eventType":"connected","sessionIdentifier":"s",
               "versionNumber":0})",
           R"({"clientId":"d","timestamp":1,"eventType":"connected","sessionIdentifier":"s",
               "principalIdentifier":"p"})",
           R"({"clientId":"d","timestamp":1,"eventType":"connected","sessionIdentifier":"s",
               "principalIdentifier":"p","versionNumber":0,"ipAddress":7})",
           R"({"clientId":"d","timestamp":1,"eventType":"disconnected","sessionIdentifier":"s",
               "principalIdentifier":"p","versionNumber":0,"clientInitiatedDisconnect":"no"})",
           R"({"clientId":"d","timestamp":1,"eventType":"disconnected","sessionIdentifier":"s",
               "principalIdentifier":"p","versionNumber":0,"disconnectReason":null})",
       }) {
    auto result = parse_lifecycle_event(bad);
    EXPECT_FALSE(result.has_value()) << bad;
    if (!result) {
      EXPECT_EQ(result.error().code, Errc::parse);
    }
  }
}

}  // namespace
}  // namespace dag::protocol
