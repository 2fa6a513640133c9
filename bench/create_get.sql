-- pgbench script for bench/masterdeal.sh: the two statements of a REST create-then-get, a
-- deal INSERTed (as the store writes it) and SELECTed back by its id, as one round trip.
-- Run with `-M prepared`: `:id` is then a parameter.
\set n random(1, 2000000000)
INSERT INTO master_deal (crm_id, external_ids, advertiser_name, advertiser_inn, advertiser_kpp, owner, title,
    budget, currency, period_from, period_to, status, updated_at, created_at, id, version)
VALUES ('P-' || :client_id || '-' || :n || '-' || md5(random()::text), '{"crm":"x"}', 'Romashka LLC', '7707083893',
    '770701001', 'bench', 'Bench deal', 1000000.00, 'RUB', '2026-03-01', '2026-05-31', 'draft',
    (extract(epoch from now()) * 1000)::bigint, (extract(epoch from now()) * 1000)::bigint,
    gen_random_uuid()::text, 1)
RETURNING id \gset
SELECT id, crm_id, external_ids, advertiser_name, advertiser_inn, advertiser_kpp, owner, title, budget::text,
    currency, period_from, period_to, status, version, created_at, updated_at
FROM master_deal WHERE id = :id;
