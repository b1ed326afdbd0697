//! The accessors every middleware service of this crate has.

/// `get_ref`, `get_mut` and `into_inner` for a middleware service generic over
/// `S` whose wrapped service is its `inner` field, as tower-http's services have.
/// Used inside the service's `impl<S> Service<S> { ... }` block.
macro_rules! define_inner_service_accessors {
    () => {
        /// The wrapped service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The wrapped service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consumes this service, returning the wrapped one.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

pub(crate) use define_inner_service_accessors;
