-- pgbench script for bench/masterdeal.sh: every statement Junction's create-then-get sends
-- (the REST lookup by CRM id; the INSERT and its outbox row in one transaction; the GET's
-- SELECT): what is left of the gap is the engine's own cost.
\set n random(1, 2000000000)
SELECT id FROM master_deal WHERE crm_id = 'T-' || :client_id || '-' || :n;
BEGIN;
INSERT INTO master_deal (crm_id, external_ids, advertiser_name, advertiser_inn, advertiser_kpp, owner, title,
    budget, currency, period_from, period_to, status, updated_at, created_at, id, version)
VALUES ('T-' || :client_id || '-' || :n || '-' || md5(random()::text), '{"crm":"x"}', 'Romashka LLC', '7707083893', '770701001', 'bench',
    'Bench deal', 1000000.00, 'RUB', '2026-03-01', '2026-05-31', 'draft',
    (extract(epoch from now()) * 1000)::bigint, (extract(epoch from now()) * 1000)::bigint,
    gen_random_uuid()::text, 1)
ON CONFLICT (crm_id) DO NOTHING
RETURNING id \gset
INSERT INTO masterdeal_outbox (event_id, aggregate_type, aggregate_id, aggregate_seq, event_type, payload, created_at)
SELECT gen_random_uuid()::text, 'deal', :id, COALESCE(MAX(aggregate_seq), 0) + 1, 'masterdeal.deal.created',
    '{"id":"' || :id || '","title":"Bench deal"}', (extract(epoch from now()) * 1000)::bigint
FROM masterdeal_outbox WHERE aggregate_type = 'deal' AND aggregate_id = :id;
COMMIT;
SELECT id, crm_id, external_ids, advertiser_name, advertiser_inn, advertiser_kpp, owner, title, budget::text,
    currency, period_from, period_to, status, version, created_at, updated_at
FROM master_deal WHERE id = :id;
