-- The operational tables of the reference domains (docs/domains.md,
-- "Source tables"): what `medallion generate --to postgres` fills and the
-- built-in extracts read.
CREATE TABLE IF NOT EXISTS restaurants (
    restaurant_id text PRIMARY KEY,
    name          text NOT NULL,
    city          text,
    cuisine       text,
    rating        numeric(2, 1),
    is_active     boolean NOT NULL DEFAULT true,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS menu_items (
    restaurant_id text NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    item_id       text NOT NULL,
    name          text NOT NULL,
    price         numeric(12, 2) NOT NULL,
    is_available  boolean NOT NULL DEFAULT true,
    position      integer NOT NULL,
    PRIMARY KEY (restaurant_id, item_id)
);
CREATE TABLE IF NOT EXISTS users (
    user_id         text PRIMARY KEY,
    email           text NOT NULL,
    name            text,
    city            text,
    signup_ts       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    is_test_account boolean,
    year_of_birth   integer
);
CREATE INDEX IF NOT EXISTS users_updated_at ON users (updated_at, user_id);
CREATE TABLE IF NOT EXISTS orders (
    order_id      text PRIMARY KEY,
    user_id       text NOT NULL,
    restaurant_id text NOT NULL,
    status        text NOT NULL CHECK (status IN ('placed', 'accepted', 'preparing', 'out_for_delivery', 'delivered', 'cancelled')),
    city          text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    currency      text,
    total_amount  numeric(12, 2) NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_updated_at ON orders (updated_at, order_id);
CREATE TABLE IF NOT EXISTS order_items (
    order_id    text NOT NULL REFERENCES orders ON DELETE CASCADE,
    line_number integer NOT NULL,
    item_id     text NOT NULL,
    name        text,
    quantity    integer NOT NULL,
    unit_price  numeric(12, 2) NOT NULL,
    PRIMARY KEY (order_id, line_number)
);
