//! Schema migrations, applied at start-up (`Migrator::up`).

use sea_orm_migration::prelude::*;

mod m20261127_000001_create_tables;
mod m20261127_000002_fencing;
mod m20261127_000003_accounts;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_tables::Migration),
            Box::new(m20261127_000002_fencing::Migration),
            Box::new(m20261127_000003_accounts::Migration),
        ]
    }
}
