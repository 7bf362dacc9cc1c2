"""A generated year of orders for the reports' benchmark, written by PostgreSQL.

Every table is filled by `INSERT ... SELECT` over `generate_series` inside the
server, so a million orders take a minute or two rather than the hours the
API would need. The mix: eight countries and four currencies, four channels,
a catalogue where a few SKUs sell most, 4% cancelled and 2% failed orders,
some cancelled units, a parcel for each order that left (with hand-over and
delivery times), and returns for 6% of delivered orders. SKUs at the end of
the catalogue stopped selling two months ago and are still in stock: the
slow movers. The same seed gives the same data.
"""

import logging
import time
from typing import Any

import psycopg

logger = logging.getLogger(__name__)

WAREHOUSES = [("BER", "DE"), ("AMS", "NL"), ("HAM", "DE"), ("WAW", "PL")]
CATEGORIES = [
    "apparel",
    "footwear",
    "home",
    "electronics",
    "beauty",
    "toys",
    "books",
    "garden",
    "sports",
    "food",
]

_CATALOGUE = [
    """
    INSERT INTO warehouses (code, name, country, priority, confirmation)
    SELECT code, 'Generated ' || code, country, 100 + n, 'automatic'
    FROM unnest(%(codes)s::text[], %(countries)s::text[]) WITH ORDINALITY
         AS w(code, country, n)
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO products (sku, name, category, weight_grams)
    SELECT 'GEN-' || lpad(i::text, 5, '0'), 'Generated product ' || i,
           (%(categories)s::text[])[1 + i %% cardinality(%(categories)s::text[])],
           100 + i %% 900
    FROM generate_series(1, %(skus)s) i
    """,
    # A EUR price per SKU, and the others converted from it.
    """
    INSERT INTO product_prices (sku, currency, amount_minor)
    SELECT p.sku, c.currency, round((500 + (i * 7919) %% 15000) * c.rate)
    FROM generate_series(1, %(skus)s) i
    CROSS JOIN (VALUES ('EUR', 1.0), ('GBP', 0.86), ('SEK', 11.5), ('PLN', 4.3))
         AS c(currency, rate)
    JOIN products p ON p.sku = 'GEN-' || lpad(i::text, 5, '0')
    """,
    """
    INSERT INTO stock_levels (sku, warehouse, on_hand, reserved, safety_stock)
    SELECT sku, warehouse, on_hand, floor(on_hand * random() / 10), 0
    FROM (
        SELECT 'GEN-' || lpad(i::text, 5, '0') AS sku, w.code AS warehouse,
               floor(random() * 400)::int AS on_hand
        FROM generate_series(1, %(skus)s) i
        CROSS JOIN unnest(%(codes)s::text[]) AS w(code)
        WHERE random() < 0.6
    ) s
    """,
]

_ORDERS = [
    """
    CREATE TEMP TABLE gen_orders ON COMMIT DROP AS
    SELECT i, md5('order-' || %(seed)s || '-' || i)::uuid AS id,
           now() - random() * interval '365 days' AS created_at,
           (ARRAY['web', 'web', 'web', 'web', 'web', 'marketplace', 'marketplace',
                  'marketplace', 'app', 'callcentre'])[1 + floor(random() * 10)]
               AS channel,
           (ARRAY['DE', 'DE', 'DE', 'DE', 'DE', 'DE', 'DE', 'FR', 'FR', 'FR', 'NL',
                  'NL', 'GB', 'GB', 'GB', 'IT', 'ES', 'ES', 'PL', 'SE'])
               [1 + floor(random() * 20)] AS country,
           random() AS fate, 1 + floor(random() ^ 2 * 4)::int AS lines
    FROM generate_series(1, %(orders)s) i
    """,
    """
    CREATE TEMP TABLE gen_lines ON COMMIT DROP AS
    SELECT o.id AS order_id, o.currency, l AS line,
           'GEN-' || lpad(CASE
               WHEN o.product > %(skus)s * 0.9
                AND o.created_at > now() - interval '60 days'
               THEN o.product - %(skus)s / 2 ELSE o.product END::text, 5, '0') AS sku,
           CASE WHEN random() < 0.97 THEN 1 + floor(random() ^ 3 * 3)::int ELSE 0 END
               AS quantity
    FROM (
        SELECT g.*, CASE g.country WHEN 'GB' THEN 'GBP' WHEN 'SE' THEN 'SEK'
                    WHEN 'PL' THEN 'PLN' ELSE 'EUR' END AS currency,
               l, 1 + floor(%(skus)s * random() ^ 2)::int AS product
        FROM gen_orders g CROSS JOIN LATERAL generate_series(1, g.lines) l
    ) o
    """,
    # Recent orders are still on their way; older ones are completed.
    """
    INSERT INTO orders (id, number, channel, status, payment_status, payment_method,
                        customer_email, customer_name, shipping_address, currency,
                        subtotal_minor, shipping_minor, total_minor, units,
                        cancel_reason, created_at)
    SELECT o.id, 'GEN-' || lpad(o.i::text, 8, '0'), o.channel, o.status,
           CASE o.status WHEN 'cancelled' THEN 'voided' WHEN 'failed' THEN 'declined'
                ELSE 'captured' END,
           'card', 'customer' || o.i %% 50000 || '@example.com', 'Generated Customer',
           jsonb_build_object('country', o.country, 'city', 'City',
                              'postal_code', '10115', 'line1', 'Street 1'),
           t.currency, t.subtotal, 490, t.subtotal + 490, t.units,
           CASE WHEN o.status = 'cancelled' THEN (ARRAY['customer_request',
                'customer_request', 'out_of_stock', 'payment_issue',
                'fraud_suspected', 'duplicate', 'payment_expired'])
                [1 + o.i %% 7] END,
           o.created_at
    FROM (
        SELECT g.*, CASE
            WHEN g.fate < 0.04 THEN 'cancelled'
            WHEN g.fate < 0.06 THEN 'failed'
            WHEN g.created_at > now() - interval '3 days' THEN 'in_fulfilment'
            WHEN g.created_at > now() - interval '17 days' THEN 'delivered'
            ELSE 'completed' END AS status
        FROM gen_orders g
    ) o
    JOIN (
        SELECT l.order_id, min(l.currency) AS currency, sum(l.quantity) AS units,
               sum(l.quantity * pp.amount_minor) AS subtotal
        FROM gen_lines l
        JOIN product_prices pp ON pp.sku = l.sku AND pp.currency = l.currency
        GROUP BY l.order_id
    ) t ON t.order_id = o.id
    """,
    """
    INSERT INTO order_lines (order_id, line, sku, name, quantity, unit_price_minor,
                             total_minor, cancelled_quantity)
    SELECT l.order_id, l.line, l.sku, p.name, l.quantity, pp.amount_minor,
           l.quantity * pp.amount_minor, CASE WHEN l.quantity = 0 THEN 1 ELSE 0 END
    FROM gen_lines l
    JOIN products p ON p.sku = l.sku
    JOIN product_prices pp ON pp.sku = l.sku AND pp.currency = l.currency
    """,
    """
    INSERT INTO shipments (id, order_id, number, warehouse, status, carrier,
                           shipped_at, delivered_at)
    SELECT md5('shipment-' || o.id)::uuid, o.id, o.number || '-1',
           (%(codes)s::text[])[1 + floor(random() * cardinality(%(codes)s::text[]))],
           CASE WHEN o.status = 'in_fulfilment' THEN 'shipped' ELSE 'delivered' END,
           CASE WHEN random() < 0.8 THEN 'sandbox' ELSE 'sandbox-express' END,
           o.created_at + (2 + random() ^ 2 * 70) * interval '1 hour',
           CASE WHEN o.status <> 'in_fulfilment' THEN o.created_at
                + (30 + random() * 150) * interval '1 hour' END
    FROM orders o
    WHERE o.number LIKE 'GEN-%%'
      AND o.status IN ('in_fulfilment', 'delivered', 'completed')
    """,
    # One return of the first line for some delivered orders, as the return
    # workflow reports it (models.returns.ReturnState).
    """
    INSERT INTO returns (id, order_id, rma, workflow_id, channel, status, reason,
                         currency, refund_minor, state, created_at)
    SELECT r.id, r.order_id, 'RMA-' || r.number, 'order-' || r.order_id || '-return-1',
           r.channel, r.status, r.reason, r.currency,
           CASE WHEN r.status = 'closed' THEN r.value ELSE 0 END,
           jsonb_build_object(
               'return_id', r.id, 'number', 1, 'rma', 'RMA-' || r.number,
               'order_id', r.order_id, 'order_number', r.number,
               'channel', r.channel, 'currency', r.currency, 'status', r.status,
               'reason', r.reason, 'warehouse', 'BER', 'opened_by', 'generated',
               'opened_at', r.opened_at,
               'lines', jsonb_build_array(jsonb_build_object(
                   'line', 1, 'sku', r.sku, 'name', r.name, 'quantity', r.quantity,
                   'unit_price_minor', r.price))),
           r.opened_at
    FROM (
        SELECT md5('return-' || o.id)::uuid AS id, o.id AS order_id, o.number,
               o.channel, o.currency, l.sku, l.name, l.quantity,
               l.unit_price_minor AS price, l.total_minor AS value,
               s.delivered_at + random() * interval '10 days' AS opened_at,
               (ARRAY['size_or_fit', 'size_or_fit', 'damaged', 'changed_mind',
                      'wrong_item', 'not_as_described'])[1 + floor(random() * 6)]
                   AS reason,
               (ARRAY['closed', 'closed', 'closed', 'closed', 'closed', 'closed',
                      'awaiting_goods', 'awaiting_goods', 'rejected', 'expired'])
                   [1 + floor(random() * 10)] AS status
        FROM orders o
        JOIN shipments s ON s.order_id = o.id
        JOIN order_lines l ON l.order_id = o.id AND l.line = 1
        WHERE o.number LIKE 'GEN-%%' AND s.delivered_at IS NOT NULL
          AND l.quantity > 0 AND random() < 0.06
    ) r
    """,
]


def generate(database_url: str, orders: int, seed: int = 1) -> dict[str, Any]:
    """Write `orders` orders (and a catalogue) into an empty migrated database;
    return how many rows each table got and how long it took."""
    skus = max(50, min(5000, orders // 200))
    params = {
        "orders": orders,
        "skus": skus,
        "seed": seed,
        "codes": [code for code, _ in WAREHOUSES],
        "countries": [country for _, country in WAREHOUSES],
        "categories": CATEGORIES,
    }
    began = time.monotonic()
    with psycopg.connect(database_url) as conn:
        # setseed makes random() repeat itself for the same seed and plan.
        conn.execute("SELECT setseed(%s)", (1 / (abs(seed) + 2),))
        for statement in _CATALOGUE + _ORDERS:
            conn.execute(statement, params)
        conn.commit()
        conn.autocommit = True
        logger.info("vacuuming and analysing the generated tables")
        conn.execute("VACUUM ANALYZE")
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("orders", "order_lines", "shipments", "returns", "products")
        }
    seconds = round(time.monotonic() - began, 1)
    logger.info("generated %s orders in %ss", orders, seconds)
    return {"rows": counts, "seconds": seconds}
