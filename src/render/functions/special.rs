//! graphite-web's `Special` group: series made from nothing (`constantLine`).

use super::{FunctionSpec, Param, ParamKind};
use crate::render::eval::{Args, Ctx};
use crate::render::series::Series;
use crate::render::RenderError;

pub(super) const FUNCTIONS: &[FunctionSpec] = &[FunctionSpec {
    name: "constantLine",
    group: "Special",
    description: "A horizontal line at the given value over the whole time range.",
    params: &[Param::required("value", ParamKind::Float)],
    imp: constant_line,
}];

/// graphite-web's constantLine: three points, at the start, the middle and the end of the
/// window (step = half the window), named after the value as Python prints it.
fn constant_line(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let value = args.number(0, "value")?;
    let (start, end) = (ctx.from, ctx.until);
    let step = ((end - start) / 2).max(1);
    let name = crate::pyfmt::py_repr(value);
    let mut series = Series::new(&name, start, step, vec![Some(value); 3]);
    series.path_expression = name;
    ctx.spend(1, 3)?;
    Ok(vec![series])
}

#[cfg(test)]
mod tests {
    use crate::render::eval::{Ctx, Spent, Store};
    use crate::render::grammar::parse;
    use crate::render::series::Series;
    use crate::render::RenderError;

    struct Empty;

    impl Store for Empty {
        fn find_leaves(&self, _: &str, _: usize) -> Result<Vec<String>, RenderError> {
            Ok(Vec::new())
        }

        fn fetch(&self, _: &str, _: i64, _: i64, _: i64) -> Result<Option<Series>, RenderError> {
            Ok(None)
        }
    }

    #[test]
    fn constant_line_is_three_points_named_as_python_prints_the_value() {
        let spent = Spent::default();
        let ctx = Ctx::new(&Empty, 1000, 4600, 4600, &spent);
        let got = ctx.eval(&parse("constantLine(100)").unwrap()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "100.0");
        assert_eq!(
            got[0].points().collect::<Vec<_>>(),
            vec![(1000, Some(100.0)), (2800, Some(100.0)), (4600, Some(100.0))]
        );
    }
}
