//! Route registration that records what it mounts, so a test can hold the OpenAPI document to
//! the routes actually served (a route added without its documentation fails that test).

use actix_web::{FromRequest, Handler, Resource, Responder, http::Method, web};

/// One mounted route: its method and full path, in actix's `{param}` syntax (OpenAPI's too).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MountedRoute {
    pub method: Method,
    pub path: String,
}

/// Mounts routes under `prefix` on an actix `ServiceConfig` and notes each one.
pub struct Routes<'a> {
    cfg: &'a mut web::ServiceConfig,
    prefix: &'static str,
    mounted: &'a mut Vec<MountedRoute>,
}

impl<'a> Routes<'a> {
    pub fn new(
        cfg: &'a mut web::ServiceConfig,
        prefix: &'static str,
        mounted: &'a mut Vec<MountedRoute>,
    ) -> Self {
        Self {
            cfg,
            prefix,
            mounted,
        }
    }

    /// Mounts one path with the methods `methods` adds to it.
    pub fn resource(&mut self, path: &str, methods: impl FnOnce(Methods) -> Methods) {
        let Methods { resource, added } = methods(Methods {
            resource: web::resource(path),
            added: Vec::new(),
        });
        for method in added {
            self.mounted.push(MountedRoute {
                method,
                path: format!("{}{path}", self.prefix),
            });
        }
        self.cfg.service(resource);
    }
}

/// The methods of one resource, noted as they are added.
pub struct Methods {
    resource: Resource,
    added: Vec<Method>,
}

macro_rules! method {
    ($name:ident, $method:ident) => {
        pub fn $name<F, Args>(mut self, handler: F) -> Self
        where
            F: Handler<Args>,
            Args: FromRequest + 'static,
            F::Output: Responder + 'static,
        {
            self.resource = self.resource.route(web::$name().to(handler));
            self.added.push(Method::$method);
            self
        }
    };
}

impl Methods {
    method!(get, GET);
    method!(post, POST);
    method!(patch, PATCH);
    method!(delete, DELETE);
}
