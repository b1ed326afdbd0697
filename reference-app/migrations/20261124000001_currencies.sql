-- ISO 4217 currencies the service knows, with their minor units (the number of
-- decimal places an amount in that currency may have). This table is the single
-- source of amount scales: money amounts are to be checked against `minor_units`.
CREATE TABLE currencies (
    code        text     PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
    name        text     NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    minor_units smallint NOT NULL CHECK (minor_units BETWEEN 0 AND 4)
);

INSERT INTO currencies (code, name, minor_units) VALUES
    ('AED', 'UAE Dirham', 2),
    ('AMD', 'Armenian Dram', 2),
    ('AUD', 'Australian Dollar', 2),
    ('AZN', 'Azerbaijan Manat', 2),
    ('BHD', 'Bahraini Dinar', 3),
    ('BRL', 'Brazilian Real', 2),
    ('BYN', 'Belarusian Ruble', 2),
    ('CAD', 'Canadian Dollar', 2),
    ('CHF', 'Swiss Franc', 2),
    ('CLF', 'Unidad de Fomento', 4),
    ('CNY', 'Yuan Renminbi', 2),
    ('CZK', 'Czech Koruna', 2),
    ('DKK', 'Danish Krone', 2),
    ('EUR', 'Euro', 2),
    ('GBP', 'Pound Sterling', 2),
    ('GEL', 'Lari', 2),
    ('HKD', 'Hong Kong Dollar', 2),
    ('INR', 'Indian Rupee', 2),
    ('JPY', 'Yen', 0),
    ('KGS', 'Som', 2),
    ('KRW', 'Won', 0),
    ('KWD', 'Kuwaiti Dinar', 3),
    ('KZT', 'Tenge', 2),
    ('MXN', 'Mexican Peso', 2),
    ('NOK', 'Norwegian Krone', 2),
    ('NZD', 'New Zealand Dollar', 2),
    ('PLN', 'Zloty', 2),
    ('RUB', 'Russian Ruble', 2),
    ('SEK', 'Swedish Krona', 2),
    ('SGD', 'Singapore Dollar', 2),
    ('THB', 'Baht', 2),
    ('TRY', 'Turkish Lira', 2),
    ('UAH', 'Hryvnia', 2),
    ('USD', 'US Dollar', 2),
    ('UZS', 'Uzbekistan Sum', 2),
    ('ZAR', 'Rand', 2);
