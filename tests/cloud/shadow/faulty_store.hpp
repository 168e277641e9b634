// A Store decorator for the service tests: forwards everything to a real store, but
// put_shadow for one device fails with StoreErrc::io, as a full disk would, so that the
// service's per-message fallback can be seen. It also counts record_battery calls, so
// that a test can see that an update which records nothing costs no statement. The
// ingest reads can be switched to the Transaction base class's versions.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "dag/store/store.hpp"

namespace dag::shadow::test {

class FaultyTransaction final : public store::Transaction {
 public:
  FaultyTransaction(std::unique_ptr<store::Transaction> inner, const std::string& poisoned,
                    int& battery_calls, bool base_reads)
      : in_(std::move(inner)),
        poisoned_(poisoned),
        battery_calls_(battery_calls),
        base_reads_(base_reads) {}

  using S = std::string_view;
  template <class T>
  using R = store::StoreResult<T>;

  [[nodiscard]] store::TxMode mode() const noexcept override { return in_->mode(); }
  R<void> commit() override { return in_->commit(); }
  void rollback() noexcept override { in_->rollback(); }
  R<store::Account> create_account(S u, S h, std::int64_t t) override {
    return in_->create_account(u, h, t);
  }
  R<store::Account> get_account(S id) override { return in_->get_account(id); }
  R<store::Account> find_account_by_username(S u) override {
    return in_->find_account_by_username(u);
  }
  R<std::vector<store::Account>> list_accounts() override { return in_->list_accounts(); }
  R<void> update_account_settings(S id, const store::AccountSettings& s) override {
    return in_->update_account_settings(id, s);
  }
  R<void> set_password_hash(S id, S h) override { return in_->set_password_hash(id, h); }
  R<store::NotificationTarget> add_target(const store::NewTarget& t) override {
    return in_->add_target(t);
  }
  R<std::vector<store::NotificationTarget>> list_targets(S id) override {
    return in_->list_targets(id);
  }
  R<void> set_target_verified(S id, bool v) override { return in_->set_target_verified(id, v); }
  R<void> remove_target(S id) override { return in_->remove_target(id); }
  R<void> record_delivery(S id, bool ok, S error, std::int64_t now) override {
    return in_->record_delivery(id, ok, error, now);
  }
  R<std::vector<store::NotificationTarget>> targets_needing_verification(std::int64_t now,
                                                                         int limit) override {
    return in_->targets_needing_verification(now, limit);
  }
  R<void> create_verification(S id, S hash, std::int64_t now, std::int64_t expires) override {
    return in_->create_verification(id, hash, now, expires);
  }
  R<bool> request_verification(S id, std::int64_t now, std::int64_t min_interval) override {
    return in_->request_verification(id, now, min_interval);
  }
  R<std::string> consume_verification(S hash, std::int64_t now) override {
    return in_->consume_verification(hash, now);
  }
  R<store::Device> create_device(const store::NewDevice& d) override {
    return in_->create_device(d);
  }
  R<store::Device> get_device(S id) override { return in_->get_device(id); }
  R<std::vector<store::Device>> list_devices(S id) override { return in_->list_devices(id); }
  R<void> rename_device(S id, S n) override { return in_->rename_device(id, n); }
  R<void> set_device_revoked(S id, bool r) override { return in_->set_device_revoked(id, r); }
  R<void> update_device_state(S id, const store::DeviceState& s) override {
    return in_->update_device_state(id, s);
  }
  R<void> change_device_state(S id, const store::DeviceState& before,
                              const store::DeviceState& after) override {
    if (base_reads_) return Transaction::change_device_state(id, before, after);
    return in_->change_device_state(id, before, after);
  }
  R<void> delete_device(S id) override { return in_->delete_device(id); }
  R<void> delete_account(S id) override { return in_->delete_account(id); }
  R<std::optional<store::StoredShadow>> get_shadow(S id) override { return in_->get_shadow(id); }
  R<store::DeviceWithShadow> get_device_with_shadow(S id,
                                                    const store::StoredShadow* known) override {
    if (base_reads_) return Transaction::get_device_with_shadow(id, known);
    return in_->get_device_with_shadow(id, known);
  }
  R<std::int64_t> put_shadow(S id, S doc, std::int64_t rev) override {
    if (id == poisoned_) {
      return store::fail(store::StoreErrc::io, "injected: disk full");
    }
    return in_->put_shadow(id, doc, rev);
  }
  R<std::int64_t> append_event(const store::Event& e) override { return in_->append_event(e); }
  R<store::EventPage> list_events(const store::EventQuery& q) override {
    return in_->list_events(q);
  }
  R<void> record_battery(const store::BatteryReading& r,
                         std::optional<std::int64_t> before) override {
    ++battery_calls_;
    return in_->record_battery(r, before);
  }
  R<std::vector<store::BatteryReading>> list_battery(S id, std::int64_t since, std::int64_t until,
                                                     int limit) override {
    return in_->list_battery(id, since, until, limit);
  }
  R<std::int64_t> schedule_timer(const store::Timer& t) override { return in_->schedule_timer(t); }
  R<bool> cancel_timer(S id, S kind) override { return in_->cancel_timer(id, kind); }
  R<std::optional<store::StoredTimer>> find_timer(S id, S kind) override {
    return in_->find_timer(id, kind);
  }
  R<std::vector<store::StoredTimer>> claim_due_timers(std::int64_t now, int limit, S owner,
                                                      std::int64_t lease) override {
    return in_->claim_due_timers(now, limit, owner, lease);
  }
  R<void> complete_timer(std::int64_t id) override { return in_->complete_timer(id); }
  R<std::optional<std::int64_t>> next_timer_due_ms() override { return in_->next_timer_due_ms(); }
  R<std::int64_t> enqueue_intent(const store::Intent& i) override { return in_->enqueue_intent(i); }
  R<std::vector<store::StoredIntent>> claim_intents(std::int64_t now, int limit, S owner,
                                                    std::int64_t lease) override {
    return in_->claim_intents(now, limit, owner, lease);
  }
  R<store::StoredIntent> get_intent(std::int64_t id) override { return in_->get_intent(id); }
  R<void> mark_intent_done(std::int64_t id, std::int64_t now) override {
    return in_->mark_intent_done(id, now);
  }
  R<void> mark_intent_failed(std::int64_t id, S reason, std::optional<std::int64_t> retry,
                             std::int64_t now) override {
    return in_->mark_intent_failed(id, reason, retry, now);
  }
  R<void> defer_intent(std::int64_t id, std::int64_t until) override {
    return in_->defer_intent(id, until);
  }
  R<store::DeviceCounts> count_devices() override { return in_->count_devices(); }
  R<std::int64_t> count_pending_intents() override { return in_->count_pending_intents(); }
  R<bool> due_intents_may_grow(std::int64_t now_ms) override {
    return in_->due_intents_may_grow(now_ms);
  }
  R<void> add_certificate(const store::DeviceCertificate& c) override {
    return in_->add_certificate(c);
  }
  R<std::vector<store::DeviceCertificate>> list_certificates(S id) override {
    return in_->list_certificates(id);
  }
  R<std::vector<std::string>> revoke_certificates(S id, std::int64_t now) override {
    return in_->revoke_certificates(id, now);
  }
  R<std::vector<store::DeviceCertificate>> list_revoked_certificates(std::int64_t now) override {
    return in_->list_revoked_certificates(now);
  }
  R<void> set_config_entry(const store::ConfigEntry& e) override {
    return in_->set_config_entry(e);
  }
  R<bool> remove_config_entry(store::ConfigScope scope, S id, S key) override {
    return in_->remove_config_entry(scope, id, key);
  }
  R<std::vector<store::ConfigEntry>> list_config_entries(store::ConfigScope scope, S id) override {
    return in_->list_config_entries(scope, id);
  }

 private:
  std::unique_ptr<store::Transaction> in_;
  const std::string& poisoned_;
  int& battery_calls_;
  bool base_reads_;
};

class FaultyStore final : public store::Store {
 public:
  explicit FaultyStore(store::Store& inner) : in_(inner) {}
  void poison(std::string device_id) { poisoned_ = std::move(device_id); }
  /// record_battery calls so far, committed or not.
  [[nodiscard]] int battery_calls() const { return battery_calls_; }
  /// From now on get_device_with_shadow and change_device_state run the Transaction base
  /// class's versions (built on get_device, get_shadow and update_device_state), as a
  /// backend without its own would.
  void use_base_reads() { base_reads_ = true; }

  store::StoreResult<std::unique_ptr<store::Transaction>> begin(store::TxMode mode) override {
    auto tx = in_.begin(mode);
    if (!tx) return tx;
    return std::unique_ptr<store::Transaction>(std::make_unique<FaultyTransaction>(
        std::move(*tx), poisoned_, battery_calls_, base_reads_));
  }
  store::StoreResult<void> ping() override { return in_.ping(); }

 private:
  store::Store& in_;
  std::string poisoned_;
  int battery_calls_{0};
  bool base_reads_{false};
};

}  // namespace dag::shadow::test
