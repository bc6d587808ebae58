-- bench/api.py, raw-SQL side: one market deal walked as 4 transactions, statement for
-- statement what the API writes for each (services/deals/ open_deal, fire_transition,
-- persist, _handoff; services/audit.py append, number_feed; notifications.record;
-- services/email_queue.enqueue; realtime.PostgresBroker.announce), in the API's order:
-- the reference counters (services/refs.py) in a statement of their own, outside the
-- deal's transaction; the feed lock, then the events numbered after the feed's head in
-- the INSERT itself, the NOTIFY, the bell items and their emails last, just before COMMIT
-- (feed.number_feed; PostgreSQL delivers the NOTIFY at COMMIT).
--
-- One pgbench transaction is one walk: transitions/s = 4 x tps. Variables from bench/api.py
-- (-D): year, seller, buyer_prefix, listing_prefix, feed_lock, channel. :client_id
-- (0-based) picks the client's buyer and listing, as in the API phase. Hashes are fixed
-- 64-hex values (the API computes SHA-256 in Python; the database only stores them). The
-- NOTIFY in each transaction has the API's payload size but goes to its own channel, so the
-- idle API server between rounds does not take pgbench's events for its own.
--
-- Lines starting with "--reads " are the API's reads besides its writes and locks (the
-- caller for the token, the listing, the quote versions for the engine, preferences, and
-- those that render the answer; on a deal that exists, the caller, the parties, the
-- listing's date, the hand-off and preferences come with the deal's row in one query). They stay comments unless bench/api.py --with-reads.

-- 1. make-offer (buyer) ------------------------------------------------------------------
INSERT INTO counters (name, value) VALUES ('DEAL-' || :year::text, 1)
  ON CONFLICT (name) DO UPDATE SET value = counters.value + 1
  RETURNING value AS deal_no \gset
BEGIN;
--reads SELECT * FROM users WHERE id = :buyer_prefix || lpad(:client_id::text, 12, '0');
--reads SELECT * FROM listings WHERE id = :listing_prefix || lpad(:client_id::text, 12, '0');
INSERT INTO deals (id, ref, process_name, process_version, state, version, listing_id,
    listing_snapshot, buyer_id, seller_id, initiated_by, proposals, transition_count,
    initiated_at, last_move_at, last_mover, last_transition, entered, first_transitioned,
    data, rules, last_seq, head_hash, created_at, updated_at, closed_at)
  VALUES (gen_random_uuid()::text,
    'DEAL-' || :year::text || '-' || lpad(:deal_no::text, greatest(4, length(:deal_no::text)), '0'),
    'market', 1, 'offer-pending', 1, :listing_prefix || lpad(:client_id::text, 12, '0'),
    '{"id": "00000000-0000-4000-c000-000000000000", "kind": "sell", "title": "Refurbished laptops, lot 0", "category": "laptops", "currency": "USD", "owner_id": "00000000-0000-4000-a000-000000000000", "quantity": 50, "sale_mode": "negotiable", "attributes": {}, "unit_price": "120.00", "updated_at": "2026-02-01T09:00:00.000000Z", "description": null, "max_order_qty": null, "min_order_qty": null}',
    :buyer_prefix || lpad(:client_id::text, 12, '0'), :seller, 'buyer', 1, 1, now(), now(),
    'buyer', 'make-offer',
    '{"offer-pending": ["2026-02-01T09:00:00.000000Z", "2026-02-01T09:00:00.000000Z"]}',
    '{"make-offer": "2026-02-01T09:00:00.000000Z"}', '{}', '{}', 1,
    '4ed143c194fd143f2ef04d7c4191aa882aec6b603b8adafd3a4a120c284ec22f', now(), now(), NULL)
  RETURNING id AS deal_id, buyer_id AS buyer_id \gset
INSERT INTO quote_versions (id, deal_id, number, created_by_id, created_by_role, unit_price,
    quantity, total_price, currency, discount_percent, lead_time_days, delivery_terms,
    valid_until, notes, message, change_reason, price_change_pct, lead_time_change_days,
    is_proposal, status, created_at)
  VALUES (gen_random_uuid()::text, :deal_id, 1, :buyer_id, 'buyer', 100.00, 50, 5000.00, 'USD',
    NULL, NULL, NULL, now() + interval '7 days', NULL, NULL, 'initial', NULL, NULL, true,
    'pending', now());
INSERT INTO timers (deal_id, kind, name, due_at, state, rule, event, status, created_at, done_at)
  VALUES (:deal_id, 'transition', 'expire', now() + interval '7 days', 'offer-pending',
      'NEG-T03', 'QUOTE_EXPIRED', 'pending', now(), NULL),
    (:deal_id, 'transition', 'expire', now() + interval '30 days', 'offer-pending',
      'NEG-T04', 'NEGOTIATION_TIMEOUT', 'pending', now(), NULL),
    (:deal_id, 'notification', 'offer-expiring', now() + interval '6 days', 'offer-pending',
      NULL, NULL, 'pending', now(), NULL)
  RETURNING id;
--reads SELECT user_id, email FROM user_preferences WHERE user_id IN (:seller);
--reads SELECT * FROM users WHERE id = :seller;
SELECT pg_advisory_xact_lock(:feed_lock);
INSERT INTO events (deal_id, seq, feed_seq, type, actor_id, actor_type, from_state, to_state,
    payload, ip, user_agent, created_at, prev_hash, hash)
  VALUES (:deal_id, 1, (SELECT coalesce(max(feed_seq), 0) FROM events) + 1, 'OFFER_MADE', :buyer_id, 'buyer', NULL, 'offer-pending',
    '{"terms": {"currency": "USD", "delivery_terms": null, "discount_percent": null, "lead_time_days": null, "notes": null, "quantity": 50, "total_price": "5000.00", "unit_price": "100.00", "valid_until": "2026-02-08T09:00:00.000000Z"}, "transition": "make-offer", "version": 1}',
    '127.0.0.1', 'python-httpx/0.28.1', now(),
    '0000000000000000000000000000000000000000000000000000000000000000',
    '4ed143c194fd143f2ef04d7c4191aa882aec6b603b8adafd3a4a120c284ec22f')
  RETURNING feed_seq;
INSERT INTO notifications (user_id, deal_id, name, template, payload, created_at, read_at,
    seen_live_at)
  VALUES (:seller, :deal_id, 'offer-made', 'offer-made',
    '{"state": "offer-pending", "deal_ref": "DEAL-2026-0001", "transition": "make-offer"}',
    now(), NULL, NULL)
  RETURNING id AS nid \gset
INSERT INTO email_outbox (user_id, kind, notification_id, deal_id, event_seq, digest_date,
    status, attempts, next_attempt_at, message_id, to_address, subject, last_error, created_at,
    sent_at)
  VALUES (:seller, 'notification', :nid, :deal_id, 1, NULL, 'pending', 0, now(),
    '<' || md5(random()::text) || '@dealroom.localhost>', NULL, NULL, NULL, now(), NULL)
  RETURNING id;
SELECT pg_notify(:channel, '[{"kind":"event","event":{"seq":1,"type":"OFFER_MADE","deal_id":"' || :deal_id || '","hash":"4ed143c194fd143f2ef04d7c4191aa882aec6b603b8adafd3a4a120c284ec22f","pad":"' || repeat('x', 650) || '"}}]');
COMMIT;

-- 2. accept (seller) ---------------------------------------------------------------------
BEGIN;
SELECT * FROM deals WHERE id = :deal_id FOR UPDATE;
--reads SELECT d.*, b.*, s.*, l.updated_at, o.*, e.*, sh.*, bp.email, sp.email FROM deals d LEFT JOIN users b ON b.id = d.buyer_id LEFT JOIN users s ON s.id = d.seller_id LEFT JOIN listings l ON l.id = d.listing_id LEFT JOIN orders o ON o.deal_id = d.id LEFT JOIN escrows e ON e.deal_id = d.id LEFT JOIN shipments sh ON sh.deal_id = d.id LEFT JOIN user_preferences bp ON bp.user_id = d.buyer_id LEFT JOIN user_preferences sp ON sp.user_id = d.seller_id WHERE d.id = :deal_id;
--reads SELECT * FROM quote_versions WHERE deal_id = :deal_id ORDER BY number;
UPDATE deals SET state = 'terms-agreed', version = 2, transition_count = 2,
    last_move_at = now(), last_mover = 'seller', last_transition = 'accept',
    entered = '{"terms-agreed": ["2026-02-01T09:00:00.000000Z", "2026-02-01T09:00:00.000000Z"], "offer-pending": ["2026-02-01T09:00:00.000000Z", "2026-02-01T09:00:00.000000Z"]}',
    first_transitioned = '{"accept": "2026-02-01T09:00:00.000000Z", "make-offer": "2026-02-01T09:00:00.000000Z"}',
    updated_at = now(),
    last_seq = 2, head_hash = 'a80e23ccec1a4800358be473354b06959c474a65ff7ca1d54f8f874fcfb19ab9'
  WHERE id = :deal_id;
UPDATE quote_versions SET status = 'accepted'
  WHERE deal_id = :deal_id AND number = 1 AND status = 'pending';
UPDATE timers SET status = 'cancelled', done_at = now()
  WHERE deal_id = :deal_id AND status = 'pending';
INSERT INTO timers (deal_id, kind, name, due_at, state, rule, event, status, created_at, done_at)
  VALUES (:deal_id, 'transition', 'expire', now() + interval '30 days', 'terms-agreed',
    'NEG-T04', 'NEGOTIATION_TIMEOUT', 'pending', now(), NULL)
  RETURNING id;
SELECT pg_advisory_xact_lock(:feed_lock);
INSERT INTO events (deal_id, seq, feed_seq, type, actor_id, actor_type, from_state, to_state,
    payload, ip, user_agent, created_at, prev_hash, hash)
  VALUES (:deal_id, 2, (SELECT coalesce(max(feed_seq), 0) FROM events) + 1, 'QUOTE_ACCEPTED', :seller, 'seller', 'offer-pending',
    'terms-agreed', '{"response_seconds": 0, "transition": "accept", "version": 1}',
    '127.0.0.1', 'python-httpx/0.28.1', now(),
    '4ed143c194fd143f2ef04d7c4191aa882aec6b603b8adafd3a4a120c284ec22f',
    'a80e23ccec1a4800358be473354b06959c474a65ff7ca1d54f8f874fcfb19ab9')
  RETURNING feed_seq;
INSERT INTO notifications (user_id, deal_id, name, template, payload, created_at, read_at,
    seen_live_at)
  VALUES (:buyer_id, :deal_id, 'offer-answered', 'offer-answered',
    '{"state": "terms-agreed", "deal_ref": "DEAL-2026-0001", "transition": "accept"}',
    now(), NULL, NULL)
  RETURNING id AS nid \gset
INSERT INTO email_outbox (user_id, kind, notification_id, deal_id, event_seq, digest_date,
    status, attempts, next_attempt_at, message_id, to_address, subject, last_error, created_at,
    sent_at)
  VALUES (:buyer_id, 'notification', :nid, :deal_id, 2, NULL, 'pending', 0, now(),
    '<' || md5(random()::text) || '@dealroom.localhost>', NULL, NULL, NULL, now(), NULL)
  RETURNING id;
SELECT pg_notify(:channel, '[{"kind":"event","event":{"seq":2,"type":"QUOTE_ACCEPTED","deal_id":"' || :deal_id || '","hash":"a80e23ccec1a4800358be473354b06959c474a65ff7ca1d54f8f874fcfb19ab9","pad":"' || repeat('x', 470) || '"}}]');
COMMIT;

-- 3. request-close (seller) --------------------------------------------------------------
BEGIN;
SELECT * FROM deals WHERE id = :deal_id FOR UPDATE;
--reads SELECT d.*, b.*, s.*, l.updated_at, o.*, e.*, sh.*, bp.email, sp.email FROM deals d LEFT JOIN users b ON b.id = d.buyer_id LEFT JOIN users s ON s.id = d.seller_id LEFT JOIN listings l ON l.id = d.listing_id LEFT JOIN orders o ON o.deal_id = d.id LEFT JOIN escrows e ON e.deal_id = d.id LEFT JOIN shipments sh ON sh.deal_id = d.id LEFT JOIN user_preferences bp ON bp.user_id = d.buyer_id LEFT JOIN user_preferences sp ON sp.user_id = d.seller_id WHERE d.id = :deal_id;
--reads SELECT * FROM quote_versions WHERE deal_id = :deal_id ORDER BY number;
UPDATE deals SET state = 'close-requested', version = 3, transition_count = 3,
    last_move_at = now(), last_transition = 'request-close',
    entered = '{"terms-agreed": ["2026-02-01T09:00:00.000000Z", "2026-02-01T09:00:00.000000Z"], "offer-pending": ["2026-02-01T09:00:00.000000Z", "2026-02-01T09:00:00.000000Z"], "close-requested": ["2026-02-01T09:00:00.000000Z", "2026-02-01T09:00:00.000000Z"]}',
    first_transitioned = '{"accept": "2026-02-01T09:00:00.000000Z", "make-offer": "2026-02-01T09:00:00.000000Z", "request-close": "2026-02-01T09:00:00.000000Z"}',
    data = '{"escrow_waived": false}', updated_at = now(),
    last_seq = 3, head_hash = 'b85d8cc8d30f876cda4a356672c157e96cf7815dae800afa8928e12e0ac38816'
  WHERE id = :deal_id;
UPDATE timers SET status = 'cancelled', done_at = now()
  WHERE deal_id = :deal_id AND status = 'pending';
INSERT INTO timers (deal_id, kind, name, due_at, state, rule, event, status, created_at, done_at)
  VALUES (:deal_id, 'transition', 'expire', now() + interval '30 days', 'close-requested',
    'NEG-T04', 'NEGOTIATION_TIMEOUT', 'pending', now(), NULL)
  RETURNING id;
SELECT pg_advisory_xact_lock(:feed_lock);
INSERT INTO events (deal_id, seq, feed_seq, type, actor_id, actor_type, from_state, to_state,
    payload, ip, user_agent, created_at, prev_hash, hash)
  VALUES (:deal_id, 3, (SELECT coalesce(max(feed_seq), 0) FROM events) + 1, 'CLOSE_REQUESTED', :seller, 'seller', 'terms-agreed',
    'close-requested', '{"transition": "request-close"}', '127.0.0.1', 'python-httpx/0.28.1',
    now(), 'a80e23ccec1a4800358be473354b06959c474a65ff7ca1d54f8f874fcfb19ab9',
    'b85d8cc8d30f876cda4a356672c157e96cf7815dae800afa8928e12e0ac38816')
  RETURNING feed_seq;
INSERT INTO notifications (user_id, deal_id, name, template, payload, created_at, read_at,
    seen_live_at)
  VALUES (:buyer_id, :deal_id, 'close-requested', 'close-requested',
    '{"state": "close-requested", "deal_ref": "DEAL-2026-0001", "transition": "request-close"}',
    now(), NULL, NULL)
  RETURNING id AS nid \gset
INSERT INTO email_outbox (user_id, kind, notification_id, deal_id, event_seq, digest_date,
    status, attempts, next_attempt_at, message_id, to_address, subject, last_error, created_at,
    sent_at)
  VALUES (:buyer_id, 'notification', :nid, :deal_id, 3, NULL, 'pending', 0, now(),
    '<' || md5(random()::text) || '@dealroom.localhost>', NULL, NULL, NULL, now(), NULL)
  RETURNING id;
SELECT pg_notify(:channel, '[{"kind":"event","event":{"seq":3,"type":"CLOSE_REQUESTED","deal_id":"' || :deal_id || '","hash":"b85d8cc8d30f876cda4a356672c157e96cf7815dae800afa8928e12e0ac38816","pad":"' || repeat('x', 450) || '"}}]');
COMMIT;

-- 4. confirm-close (buyer): order, escrow and shipment -----------------------------------
INSERT INTO counters (name, value) VALUES ('ORD-' || :year::text, 1)
  ON CONFLICT (name) DO UPDATE SET value = counters.value + 1
  RETURNING value AS order_no \gset
BEGIN;
SELECT * FROM deals WHERE id = :deal_id FOR UPDATE;
--reads SELECT d.*, b.*, s.*, l.updated_at, o.*, e.*, sh.*, bp.email, sp.email FROM deals d LEFT JOIN users b ON b.id = d.buyer_id LEFT JOIN users s ON s.id = d.seller_id LEFT JOIN listings l ON l.id = d.listing_id LEFT JOIN orders o ON o.deal_id = d.id LEFT JOIN escrows e ON e.deal_id = d.id LEFT JOIN shipments sh ON sh.deal_id = d.id LEFT JOIN user_preferences bp ON bp.user_id = d.buyer_id LEFT JOIN user_preferences sp ON sp.user_id = d.seller_id WHERE d.id = :deal_id;
--reads SELECT * FROM quote_versions WHERE deal_id = :deal_id ORDER BY number;
UPDATE deals SET state = 'closed-won', version = 4, transition_count = 4,
    last_move_at = now(), last_mover = 'buyer', last_transition = 'confirm-close',
    entered = '{"closed-won": ["2026-02-01T09:00:00.000000Z", "2026-02-01T09:00:00.000000Z"], "terms-agreed": ["2026-02-01T09:00:00.000000Z", "2026-02-01T09:00:00.000000Z"], "offer-pending": ["2026-02-01T09:00:00.000000Z", "2026-02-01T09:00:00.000000Z"], "close-requested": ["2026-02-01T09:00:00.000000Z", "2026-02-01T09:00:00.000000Z"]}',
    first_transitioned = '{"accept": "2026-02-01T09:00:00.000000Z", "make-offer": "2026-02-01T09:00:00.000000Z", "confirm-close": "2026-02-01T09:00:00.000000Z", "request-close": "2026-02-01T09:00:00.000000Z"}',
    updated_at = now(), closed_at = now(),
    last_seq = 7, head_hash = '8cb24d17a5eedc9a53f54e1f43696f3575b4af173860fc0d2d9520519562a095'
  WHERE id = :deal_id;
INSERT INTO orders (id, deal_id, ref, quote_version, total, currency, fees, status, created_at)
  VALUES (gen_random_uuid()::text, :deal_id,
    'ORD-' || :year::text || '-' || lpad(:order_no::text, greatest(4, length(:order_no::text)), '0'),
    1, 5000.00, 'USD',
    '[{"name": "platform", "payer": "seller", "amount": "125.00", "percent": "2.5", "currency": "USD"}]',
    'open', now())
  RETURNING id AS order_id \gset
INSERT INTO escrows (id, deal_id, order_id, status, amount, currency, created_at)
  VALUES (gen_random_uuid()::text, :deal_id, :order_id, 'open', 5000.00, 'USD', now());
INSERT INTO shipments (id, deal_id, order_id, status, created_at)
  VALUES (gen_random_uuid()::text, :deal_id, :order_id, 'awaiting_pickup', now());
UPDATE timers SET status = 'cancelled', done_at = now()
  WHERE deal_id = :deal_id AND status = 'pending';
SELECT pg_advisory_xact_lock(:feed_lock);
INSERT INTO events (deal_id, seq, feed_seq, type, actor_id, actor_type, from_state, to_state,
    payload, ip, user_agent, created_at, prev_hash, hash)
  VALUES (:deal_id, 4, (SELECT coalesce(max(feed_seq), 0) FROM events) + 1, 'DEAL_CLOSED', :buyer_id, 'buyer', 'close-requested',
      'closed-won', '{"response_seconds": 0, "transition": "confirm-close"}', '127.0.0.1',
      'python-httpx/0.28.1', now(),
      'b85d8cc8d30f876cda4a356672c157e96cf7815dae800afa8928e12e0ac38816',
      '74daab2e0af4b00ef866fb602c707272026d7f4e0b88b4d1e4fbabe8d2f55bf6'),
    (:deal_id, 5, (SELECT coalesce(max(feed_seq), 0) FROM events) + 2, 'ORDER_CREATED', NULL, 'system', 'closed-won', 'closed-won',
      '{"currency": "USD", "fees": [{"amount": "125.00", "currency": "USD", "name": "platform", "payer": "seller", "percent": "2.5"}], "order_ref": "ORD-2026-0001", "total": "5000.00", "version": 1}',
      NULL, NULL, now(),
      '74daab2e0af4b00ef866fb602c707272026d7f4e0b88b4d1e4fbabe8d2f55bf6',
      '5a095db7a349bf7bd2ac42cd3270261da0bb9ffb8026af6bd6ce18f373eda787'),
    (:deal_id, 6, (SELECT coalesce(max(feed_seq), 0) FROM events) + 3, 'ESCROW_OPENED', NULL, 'system', 'closed-won', 'closed-won', '{}',
      NULL, NULL, now(),
      '5a095db7a349bf7bd2ac42cd3270261da0bb9ffb8026af6bd6ce18f373eda787',
      '0d13150762469769af89adfd62334327c27fda4b8962dbda856241c97b97faee'),
    (:deal_id, 7, (SELECT coalesce(max(feed_seq), 0) FROM events) + 4, 'SHIPMENT_CREATED', NULL, 'system', 'closed-won', 'closed-won', '{}',
      NULL, NULL, now(),
      '0d13150762469769af89adfd62334327c27fda4b8962dbda856241c97b97faee',
      '8cb24d17a5eedc9a53f54e1f43696f3575b4af173860fc0d2d9520519562a095')
  RETURNING feed_seq;
INSERT INTO notifications (user_id, deal_id, name, template, payload, created_at, read_at,
    seen_live_at)
  VALUES (:buyer_id, :deal_id, 'deal-closed', 'deal-closed',
      '{"state": "closed-won", "deal_ref": "DEAL-2026-0001", "transition": "confirm-close"}',
      now(), NULL, NULL),
    (:seller, :deal_id, 'deal-closed', 'deal-closed',
      '{"state": "closed-won", "deal_ref": "DEAL-2026-0001", "transition": "confirm-close"}',
      now(), NULL, NULL)
  RETURNING id;
INSERT INTO email_outbox (user_id, kind, notification_id, deal_id, event_seq, digest_date,
    status, attempts, next_attempt_at, message_id, to_address, subject, last_error, created_at,
    sent_at)
  VALUES (:buyer_id, 'notification', currval('notifications_id_seq') - 1, :deal_id, 7, NULL,
      'pending', 0, now(), '<' || md5(random()::text) || '@dealroom.localhost>', NULL, NULL,
      NULL, now(), NULL),
    (:seller, 'notification', currval('notifications_id_seq'), :deal_id, 7, NULL, 'pending', 0,
      now(), '<' || md5(random()::text) || '@dealroom.localhost>', NULL, NULL, NULL, now(), NULL)
  RETURNING id;
SELECT pg_notify(:channel, '[{"kind":"event","event":{"seq":4,"type":"DEAL_CLOSED","deal_id":"' || :deal_id || '","hash":"74daab2e0af4b00ef866fb602c707272026d7f4e0b88b4d1e4fbabe8d2f55bf6","pad":"' || repeat('x', 1950) || '"}}]');
COMMIT;
